"""The chaos suite (``make chaos``, ``python -m chaos``): faults against real workers, one summary table.

It starts a Kafka and a Redis of its own (``deploy/local/services.sh`` on free
ports in a temporary run dir: nobody else's services are ever touched), three
``tactful worker`` processes, and feeds generated journeys with 1% poison
records while it kills workers (-9), kills the broker, stops, restarts and
flushes Redis (:mod:`chaos.run`). Then it compares what landed with what
``tactful replay`` decides over the same events (:mod:`chaos.check`), runs a
decoder fuzz of a million inputs (:mod:`chaos.fuzz`), and prints one table
(:mod:`chaos.report`). It runs from a checkout, like ``bench/``: not in the wheel.
"""
