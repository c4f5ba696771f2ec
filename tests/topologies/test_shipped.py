"""Each shipped topology, firing and not firing, through the real folder."""

from __future__ import annotations

from itertools import count
from pathlib import Path
from typing import Any

import pytest

from streams.replay import run
from streams.timeutil import HOUR, MINUTE, format_time, parse_time

FOLDER = Path(__file__).resolve().parents[2] / "topologies"
T0 = parse_time("2026-05-04T09:00:00Z")  # a Monday morning, outside quiet hours
_ids = count()


def ev(etype: str, at: int, customer: str = "c1", channel: str | None = "web", **attrs: str) -> dict[str, Any]:
    return {
        "event_id": f"e{next(_ids)}",
        "customer_id": customer,
        "type": etype,
        "occurred_at": format_time(at),
        "channel": channel,
        "attributes": attrs,
    }


def fired(events: list[dict[str, Any]], until: int | None = None) -> list[tuple[str, str, str, str | None]]:
    result = run(FOLDER, events, until)
    return [(d["topology"], d["kind"], d["channel"], d["category"]) for d in result.decisions]


def test_the_shipped_folder_validates() -> None:
    from streams.topology import load_folder

    names = {t.name for t in load_folder(FOLDER).topologies}
    assert names >= {
        "post_purchase_friction",
        "activation_nudge",
        "abandoned_cart_reminder",
        "failed_login_guard",
        "delivery_delay_apology",
        "complaint_escalation",
        "service_outage_hold",
    }
    assert all(t.description for t in load_folder(FOLDER).topologies)


class TestPostPurchaseFriction:
    def journey(self, resolved: str = "false", activated_between: bool = False) -> list[dict[str, Any]]:
        evs = [ev("purchase", T0, channel="store", category="phone"), ev("activation_failed", T0 + HOUR, channel="app")]
        if activated_between:
            evs.append(ev("activation_succeeded", T0 + 2 * HOUR, channel="app"))
        evs.append(ev("support_contact", T0 + 3 * HOUR, channel="call_center", resolved=resolved))
        return evs

    def test_fires_suppress_and_engage(self) -> None:
        got = [d for d in fired(self.journey()) if d[0] == "post_purchase_friction"]
        assert got == [
            ("post_purchase_friction", "ENGAGE", "call_center", None),
            ("post_purchase_friction", "SUPPRESS", "ads", "phone"),
            ("post_purchase_friction", "SUPPRESS", "email", "phone"),
            ("post_purchase_friction", "SUPPRESS", "sms", "phone"),
        ]

    @pytest.mark.parametrize("resolved, between", [("true", False), ("false", True)])
    def test_does_not_fire_when_resolved_or_activated(self, resolved: str, between: bool) -> None:
        got = fired(self.journey(resolved, between))
        assert not [d for d in got if d[0] == "post_purchase_friction"]

    def test_activation_releases_the_suppressions(self) -> None:
        evs = [*self.journey(), ev("activation_succeeded", T0 + 5 * HOUR, channel="app")]
        releases = [d for d in fired(evs) if d[1] == "RELEASE"]
        assert releases == [("post_purchase_friction", "RELEASE", ch, "phone") for ch in ("ads", "email", "sms")]


class TestActivationNudge:
    def test_fires_a_day_after_an_unactivated_purchase(self) -> None:
        got = fired([ev("purchase", T0, channel="web", category="tablet")], until=T0 + 24 * HOUR)
        assert got == [("activation_nudge", "ENGAGE", "sms", "tablet")]

    def test_not_when_activated_in_time_or_not_a_device(self) -> None:
        activated = [ev("purchase", T0, category="phone"), ev("activation_succeeded", T0 + 23 * HOUR)]
        assert fired(activated, until=T0 + 48 * HOUR) == []
        assert fired([ev("purchase", T0, category="headphones")], until=T0 + 48 * HOUR) == []

    def test_not_before_the_deadline(self) -> None:
        assert fired([ev("purchase", T0, category="phone")], until=T0 + 24 * HOUR - 1) == []


class TestAbandonedCart:
    def test_fires_when_nothing_bought_within_a_day(self) -> None:
        got = fired([ev("cart_add", T0, channel="app", category="shoes")], until=T0 + 24 * HOUR)
        assert got == [("abandoned_cart_reminder", "ENGAGE", "email", "shoes")]

    def test_not_when_bought_or_added_in_store(self) -> None:
        bought = [ev("cart_add", T0, category="shoes"), ev("purchase", T0 + 2 * HOUR, category="shoes")]
        assert fired(bought, until=T0 + 48 * HOUR) == []
        assert fired([ev("cart_add", T0, channel="store", category="shoes")], until=T0 + 48 * HOUR) == []


class TestFailedLoginGuard:
    def failures(self, n: int, spacing: int = MINUTE) -> list[dict[str, Any]]:
        return [ev("login_failed", T0 + i * spacing, channel="app") for i in range(n)]

    def test_five_failures_in_fifteen_minutes_fire_once(self) -> None:
        got = fired(self.failures(7))
        assert got == [
            ("failed_login_guard", "ENGAGE", "sms", "account"),
            ("failed_login_guard", "SUPPRESS", "email", "*"),
            ("failed_login_guard", "SUPPRESS", "push", "*"),
            ("failed_login_guard", "SUPPRESS", "sms", "*"),
        ]  # the 6th and 7th failures are held back by the 1d cooldown

    def test_not_for_four_or_when_spread_out(self) -> None:
        assert fired(self.failures(4)) == []
        assert fired(self.failures(5, spacing=4 * MINUTE)) == []  # 16 minutes from first to last

    def test_password_reset_releases(self) -> None:
        got = fired([*self.failures(5), ev("password_reset", T0 + HOUR, channel="web")])
        assert [d for d in got if d[1] == "RELEASE"] == [
            ("failed_login_guard", "RELEASE", ch, "*") for ch in ("email", "push", "sms")
        ]


class TestDeliveryDelayApology:
    def test_fires_on_delay_after_shipping(self) -> None:
        evs = [ev("order_shipped", T0, category="furniture"), ev("delivery_delayed", T0 + 30 * HOUR)]
        got = fired(evs)
        assert ("delivery_delay_apology", "ENGAGE", "sms", "furniture") in got
        assert {d[2] for d in got if d[1] == "SUPPRESS"} == {"ads", "email", "push"}

    def test_not_when_already_delivered_or_never_shipped(self) -> None:
        delivered = [
            ev("order_shipped", T0, category="furniture"),
            ev("order_delivered", T0 + HOUR),
            ev("delivery_delayed", T0 + 2 * HOUR),
        ]
        assert fired(delivered) == []
        assert fired([ev("delivery_delayed", T0)]) == []


class TestComplaintEscalation:
    def test_second_complaint_within_thirty_days(self) -> None:
        evs = [
            ev("complaint", T0, channel="email", category="billing"),
            ev("complaint", T0 + 10 * 24 * HOUR, channel="call_center", category="billing"),
        ]
        got = fired(evs)
        assert ("complaint_escalation", "ENGAGE", "call_center", "billing") in got
        assert {d[2] for d in got if d[1] == "SUPPRESS"} == {"ads", "email", "sms", "push"}

    def test_not_for_a_single_or_distant_complaint(self) -> None:
        assert fired([ev("complaint", T0, category="billing")]) == []
        far = [ev("complaint", T0, category="billing"), ev("complaint", T0 + 31 * 24 * HOUR, category="billing")]
        assert fired(far) == []


class TestServiceOutageHold:
    def test_outage_suppresses_everything_and_updates_by_push(self) -> None:
        got = fired([ev("service_outage", T0, channel=None, region="north")])
        assert got[0] == ("service_outage_hold", "ENGAGE", "push", "service")
        assert {d[2] for d in got if d[1] == "SUPPRESS"} == {"ads", "email", "sms", "push"}

    def test_engagement_action_names_the_region(self) -> None:
        result = run(FOLDER, [ev("service_outage", T0, channel=None, region="north")])
        assert [d["action"] for d in result.decisions if d["kind"] == "ENGAGE"] == ["outage_update_north"]

    def test_without_region_the_update_is_skipped_not_sent(self) -> None:
        result = run(FOLDER, [ev("service_outage", T0, channel=None)])
        skipped = [d for d in result.audit if d["status"] == "skipped"]
        assert [(d["kind"], d["cause"]) for d in skipped] == [("ENGAGE", "template outage_update_{outage.region}")]
        assert all(d["kind"] == "SUPPRESS" for d in result.decisions)

    def test_restored_service_releases(self) -> None:
        got = fired([ev("service_outage", T0, region="north"), ev("service_restored", T0 + HOUR, region="north")])
        assert sorted(d[2] for d in got if d[1] == "RELEASE") == ["ads", "email", "push", "sms"]
