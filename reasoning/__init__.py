"""Reasoning: OWL 2 RL subset + Datalog rules over the knowledge graph, with provenance.

Entry points for the CLI and the API:

- `materialise(store)`: recompute and store every inferred fact (`riskgraph reason`)
- `explain(store, subject, predicate, object)`: derivation tree down to source rows
  (`riskgraph explain S P O`, `GET /v1/explain`)
- `materialise_rdf(in_path, out_path)`: closure of any RDF file (`riskgraph reason --rdf`)
- `export_rdf(store, out_path)`: the graph as N-Triples under the ontology
  (`riskgraph export --rdf`)
"""

from reasoning.materialise import ReasoningSummary, materialise
from reasoning.provenance import DerivationTree, explain
from reasoning.rdf import RdfSummary, export_rdf, materialise_rdf

__all__ = [
    "DerivationTree",
    "RdfSummary",
    "ReasoningSummary",
    "explain",
    "export_rdf",
    "materialise",
    "materialise_rdf",
]
