"""The pure decision engine and the partition driver around it."""

from streams.engine.engine import Engine
from streams.engine.idle import IdleAdvance
from streams.engine.processor import DictStore, Outcome, Processor, StateStore
from streams.engine.schedule import CatalogSchedule, Change
from streams.engine.state import CustomerState
from streams.engine.step import Rejection, Step

__all__ = [
    "CatalogSchedule",
    "Change",
    "CustomerState",
    "DictStore",
    "Engine",
    "IdleAdvance",
    "Outcome",
    "Processor",
    "Rejection",
    "StateStore",
    "Step",
]
