"""The pure decision engine and the partition driver around it."""

from streams.engine.engine import Engine
from streams.engine.processor import DictStore, Outcome, Processor, StateStore
from streams.engine.state import CustomerState

__all__ = ["CustomerState", "DictStore", "Engine", "Outcome", "Processor", "StateStore"]
