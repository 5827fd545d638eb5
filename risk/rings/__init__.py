"""Regional fraud-ring detection: the fraud graph, candidate rings, evidence, scores and the
nightly job that keeps ring ids stable across runs."""

from risk.rings.detect import DetectionParams, LocalRing, Ring, detect_rings, local_ring
from risk.rings.fraud_graph import FraudGraph, FraudGraphWeights, build_fraud_graph
from risk.rings.nightly import RingRun, latest_run, run_ring_detection

__all__ = [
    "DetectionParams",
    "FraudGraph",
    "FraudGraphWeights",
    "LocalRing",
    "Ring",
    "RingRun",
    "build_fraud_graph",
    "detect_rings",
    "latest_run",
    "local_ring",
    "run_ring_detection",
]
