"""Compile the supported OWL 2 RL axioms of an RDF graph into Datalog rules.

Supported (the rest of OWL is counted in `OwlProgram.unsupported` and ignored):
`rdfs:subPropertyOf`, `owl:equivalentProperty`, `owl:inverseOf`, `owl:SymmetricProperty`,
`owl:TransitiveProperty`, `owl:propertyChainAxiom` (any length, recursive chains included),
`rdfs:domain`, `rdfs:range`, `rdfs:subClassOf` and `owl:equivalentClass` between named
classes. Properties become binary predicates, classes unary ones; the caller chooses their
names (local names for the riskgraph ontology, full IRIs for arbitrary RDF).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rdflib import OWL, RDF, RDFS, BNode, Graph, URIRef
from rdflib.collection import Collection
from rdflib.term import Node

from reasoning.datalog import Atom, Rule, Var

ONTOLOGY_PATH = Path(__file__).resolve().parent.parent / "kg" / "ontology.ttl"
RG = "https://riskgraph.dev/ontology#"

# Predicates whose triples state axioms rather than data.
SCHEMA_PREDICATES: frozenset[URIRef] = frozenset(
    {
        RDFS.subPropertyOf,
        RDFS.subClassOf,
        RDFS.domain,
        RDFS.range,
        OWL.inverseOf,
        OWL.equivalentProperty,
        OWL.equivalentClass,
        OWL.propertyChainAxiom,
        RDF.first,
        RDF.rest,
    }
)
_SUPPORTED_TYPES = frozenset({OWL.SymmetricProperty, OWL.TransitiveProperty})
_DECLARATIONS = frozenset(
    {
        OWL.ObjectProperty,
        OWL.DatatypeProperty,
        OWL.AnnotationProperty,
        OWL.Class,
        RDFS.Class,
        RDF.Property,
        OWL.Ontology,
    }
)

Namer = Callable[[URIRef], str]


@dataclass(slots=True)
class OwlProgram:
    """Rules compiled from an ontology, and the vocabulary they mention."""

    rules: list[Rule] = field(default_factory=list)
    properties: set[str] = field(default_factory=set)
    classes: set[str] = field(default_factory=set)
    unsupported: Counter[str] = field(default_factory=Counter)


def local_name(iri: URIRef) -> str:
    """`https://riskgraph.dev/ontology#controls` -> `controls`."""
    text = str(iri)
    return text.rsplit("#", 1)[-1].rsplit("/", 1)[-1]


_X, _Y, _Z = Var("X"), Var("Y"), Var("Z")


def _short(iri: Node) -> str:
    text = str(iri)
    return text.rsplit("#", 1)[-1].rsplit("/", 1)[-1]


def compile_owl(
    graph: Graph, prop_name: Namer = local_name, class_name: Namer = local_name
) -> OwlProgram:
    """Rules for the supported axioms in `graph`.

    Example:
        >>> g = Graph().parse(data="@prefix owl: <http://www.w3.org/2002/07/owl#> . "
        ...     "<urn:p> a owl:TransitiveProperty .", format="turtle")
        >>> [r.id for r in compile_owl(g).rules]
        ['owl:TransitiveProperty(p)']
    """
    prog = OwlProgram()

    def prop(node: Node) -> str | None:
        if isinstance(node, URIRef):
            name = prop_name(node)
            prog.properties.add(name)
            return name
        return None

    def cls(node: Node) -> str | None:
        if isinstance(node, URIRef) and node not in (OWL.Thing, RDFS.Resource):
            name = class_name(node)
            prog.classes.add(name)
            return name
        return None

    def add(rule_id: str, head: Atom, *body: Atom) -> None:
        prog.rules.append(Rule(rule_id, head.pred, head.args, tuple(body), f"axiom {rule_id}"))

    def sub_property(p: str, q: str, rule_id: str) -> None:
        add(rule_id, Atom(q, (_X, _Y)), Atom(p, (_X, _Y)))

    def sub_class(c: str, d: str, rule_id: str) -> None:
        add(rule_id, Atom(d, (_X,)), Atom(c, (_X,)))

    for s, p, o in sorted(graph.triples((None, None, None))):
        tag = f"{_short(p)}({_short(s)},{_short(o)})"
        if p in (RDFS.subPropertyOf, OWL.equivalentProperty):
            ps, po = prop(s), prop(o)
            if ps is None or po is None:
                prog.unsupported[str(p)] += 1
                continue
            kind = "rdfs:subPropertyOf" if p == RDFS.subPropertyOf else "owl:equivalentProperty"
            tag = f"{kind}({_short(s)},{_short(o)})"
            sub_property(ps, po, tag)
            if p == OWL.equivalentProperty:
                sub_property(po, ps, tag)
        elif p == OWL.inverseOf:
            ps, po = prop(s), prop(o)
            if ps is None or po is None:
                prog.unsupported[str(p)] += 1
                continue
            tag = f"owl:inverseOf({_short(s)},{_short(o)})"
            add(tag, Atom(po, (_Y, _X)), Atom(ps, (_X, _Y)))
            add(tag, Atom(ps, (_Y, _X)), Atom(po, (_X, _Y)))
        elif p == RDF.type and o in _SUPPORTED_TYPES:
            ps = prop(s)
            if ps is None:
                prog.unsupported[str(o)] += 1
                continue
            if o == OWL.SymmetricProperty:
                add(f"owl:SymmetricProperty({_short(s)})", Atom(ps, (_Y, _X)), Atom(ps, (_X, _Y)))
            else:
                add(
                    f"owl:TransitiveProperty({_short(s)})",
                    Atom(ps, (_X, _Z)),
                    Atom(ps, (_X, _Y)),
                    Atom(ps, (_Y, _Z)),
                )
        elif p == OWL.propertyChainAxiom:
            ps = prop(s)
            members = list(Collection(graph, o)) if isinstance(o, BNode | URIRef) else []
            names = [prop(m) for m in members]
            if ps is None or not names or any(n is None for n in names):
                prog.unsupported[str(p)] += 1
                continue
            chain = [Var(f"X{i}") for i in range(len(names) + 1)]
            body = [Atom(n, (chain[i], chain[i + 1])) for i, n in enumerate(names) if n]
            tag = f"owl:propertyChainAxiom({_short(s)}={'∘'.join(_short(m) for m in members)})"
            add(tag, Atom(ps, (chain[0], chain[-1])), *body)
        elif p in (RDFS.domain, RDFS.range):
            ps, co = prop(s), cls(o)
            if ps is None or co is None:
                prog.unsupported[str(p)] += 1
                continue
            var = _X if p == RDFS.domain else _Y
            kind = "rdfs:domain" if p == RDFS.domain else "rdfs:range"
            add(f"{kind}({_short(s)},{_short(o)})", Atom(co, (var,)), Atom(ps, (_X, _Y)))
        elif p in (RDFS.subClassOf, OWL.equivalentClass):
            cs, co = cls(s), cls(o)
            if cs is None or co is None:
                if not (isinstance(o, URIRef) and o in (OWL.Thing, RDFS.Resource)):
                    prog.unsupported[str(p)] += 1
                continue
            kind = "rdfs:subClassOf" if p == RDFS.subClassOf else "owl:equivalentClass"
            tag = f"{kind}({_short(s)},{_short(o)})"
            sub_class(cs, co, tag)
            if p == OWL.equivalentClass:
                sub_class(co, cs, tag)
        elif (
            p == RDF.type
            and isinstance(o, URIRef)
            and str(o).startswith(str(OWL))
            and o not in _DECLARATIONS
        ):
            prog.unsupported[str(o)] += 1
    return prog


def load_ontology(path: str | Path = ONTOLOGY_PATH) -> Graph:
    """The riskgraph ontology (or another Turtle file) as an rdflib graph."""
    return Graph().parse(str(path), format="turtle")


def ontology_rules(path: str | Path = ONTOLOGY_PATH) -> list[Rule]:
    """Rules of the riskgraph ontology, predicates named by local name."""
    return compile_owl(load_ontology(path)).rules
