"""RDF in and out: reason over any RDF graph, and export the knowledge graph as RDF.

`materialise_rdf` reads N-Triples with a fast line reader (other formats through rdflib),
compiles the supported OWL axioms found in the graph itself, encodes every term as an
integer (pyarrow dictionary encoding), runs the engine and writes the closure as N-Triples.
Terms are compared as written: `"1"^^xsd:integer` and `"01"^^xsd:integer` stay different.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from rdflib import OWL, RDF, Graph, URIRef

from kg.model import Label, RelType
from kg.store import GraphStore
from reasoning.datalog import Rule
from reasoning.engine import Engine
from reasoning.owl import RG, SCHEMA_PREDICATES, compile_owl

# pyarrow string arrays; the stubs' generics add nothing here
StrArray = Any
IntArray = npt.NDArray[np.int64]
RDF_TYPE = RDF.type.n3()
_CLASS_PREFIX = "a "
_SCHEMA_N3 = frozenset(p.n3() for p in SCHEMA_PREDICATES)
_OWL_NS = str(OWL)
_WRITE_CHUNK = 1 << 19  # lines built and written at a time


@dataclass(slots=True)
class RdfSummary:
    """Sizes and timings of one RDF materialisation."""

    triples_in: int
    triples_out: int
    rules: int
    load_seconds: float
    reason_seconds: float
    write_seconds: float

    @property
    def seconds(self) -> float:
        return self.load_seconds + self.reason_seconds + self.write_seconds


def _read_ntriples(path: Path) -> tuple[StrArray, StrArray, StrArray]:
    # Lines of four space-separated fields (s p o .) are parsed by Arrow's CSV reader; the
    # rest (literals with spaces, comments, odd whitespace) by the line reader below.
    odd: list[str] = []

    def keep_odd(row: Any) -> Literal["skip"]:
        odd.append(row.text)
        return "skip"

    table = pa_csv.read_csv(
        path,
        read_options=pa_csv.ReadOptions(column_names=["s", "p", "o", "end"], block_size=1 << 26),
        parse_options=pa_csv.ParseOptions(
            delimiter=" ", quote_char=False, escape_char=False, invalid_row_handler=keep_odd
        ),
        convert_options=pa_csv.ConvertOptions(
            column_types={c: pa.string() for c in ("s", "p", "o", "end")}
        ),
    )
    # four fields not ending in "." are a literal such as `"a b".` split wrongly: re-read
    proper: Any = pc.equal(table.column("end"), pa.scalar(".", pa.string()))
    if not pc.all(proper).as_py():
        bad = table.filter(pc.invert(proper))
        odd += [" ".join(r.values()) for r in bad.to_pylist()]
        table = table.filter(proper)
    cols: list[list[StrArray]] = [[table.column(c)] for c in ("s", "p", "o")]
    if odd:
        rest = list(zip(*_nt_lines(odd), strict=True))
        if rest:
            for k in range(3):
                cols[k].append(pa.chunked_array([pa.array(rest[k], pa.string())]))
    out = [pa.chunked_array([c for part in col for c in part.chunks], pa.string()) for col in cols]
    return out[0].combine_chunks(), out[1].combine_chunks(), out[2].combine_chunks()


def _nt_lines(lines: Iterable[str]) -> Iterator[tuple[str, str, str]]:
    for raw in lines:
        line = raw.strip()
        if not line or line[0] == "#":
            continue
        s, p, rest = line.split(None, 2)
        rest = rest.rstrip()
        if rest.endswith("."):
            rest = rest[:-1].rstrip()
        yield s, p, rest


def read_triples(path: str | Path, fmt: str | None = None) -> tuple[StrArray, StrArray, StrArray]:
    """Subject, predicate and object columns of an RDF file, each term in N3 form."""
    path = Path(path)
    fmt = fmt or ("nt" if path.suffix in (".nt", ".ntriples") else None)
    if fmt == "nt":
        return _read_ntriples(path)
    graph = Graph().parse(str(path), format=fmt)
    cols = list(zip(*((s.n3(), p.n3(), o.n3()) for s, p, o in graph), strict=True))
    cols = cols or [(), (), ()]
    return (
        pa.array(cols[0], pa.string()),
        pa.array(cols[1], pa.string()),
        pa.array(cols[2], pa.string()),
    )


def compile_triples(s: StrArray, p: StrArray, o: StrArray) -> tuple[list[Rule], int]:
    """Rules for the OWL axioms among the triples; predicates named by N3 term."""
    # the schema triples are picked in Arrow: only they become Python strings
    schema_p = pa.array(sorted(_SCHEMA_N3), pa.string())
    picked: Any = pc.or_(
        pc.is_in(p, value_set=schema_p),
        pc.and_(
            pc.equal(p, pa.scalar(RDF_TYPE, pa.string())),
            pc.starts_with(o, "<" + _OWL_NS),
        ),
    )
    s_l: list[str] = s.filter(picked).to_pylist()
    p_l: list[str] = p.filter(picked).to_pylist()
    o_l: list[str] = o.filter(picked).to_pylist()
    lines = [f"{a} {b} {c} ." for a, b, c in zip(s_l, p_l, o_l, strict=True)]
    graph = Graph().parse(data="\n".join(lines), format="nt") if lines else Graph()
    prog = compile_owl(
        graph,
        prop_name=lambda iri: iri.n3(),
        class_name=lambda iri: _CLASS_PREFIX + iri.n3(),
    )
    return prog.rules, sum(prog.unsupported.values())


def reason_triples(
    s: StrArray, p: StrArray, o: StrArray, rules: list[Rule]
) -> tuple[Engine, StrArray]:
    """Run the rules over the triples; returns the engine and the term dictionary."""
    n = len(s)
    encoded = pa.chunked_array([s, p, o]).combine_chunks().dictionary_encode()
    terms = encoded.dictionary
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    sc, pc_, oc = codes[:n], codes[n : 2 * n], codes[2 * n :]
    engine = Engine(rules)
    type_code = _code_of(terms, RDF_TYPE)
    is_type = pc_ == type_code
    for pred in np.flatnonzero(np.bincount(pc_[~is_type])).tolist():  # codes are dense
        m = pc_ == pred
        engine.add_facts(str(terms[pred].as_py()), sc[m], oc[m])
    if is_type.any():
        ts, to = sc[is_type], oc[is_type]
        order = np.argsort(to, kind="stable")
        ts, to = ts[order], to[order]
        bounds = np.flatnonzero(np.diff(to)) + 1
        for part_s, part_o in zip(np.split(ts, bounds), np.split(to, bounds), strict=True):
            engine.add_facts(_CLASS_PREFIX + str(terms[int(part_o[0])].as_py()), part_s)
    engine.run()
    return engine, terms


def _code_of(terms: StrArray, term: str) -> int:
    idx = pc.index(terms, pa.scalar(term, pa.string())).as_py()
    return int(idx) if idx is not None else -1


@dataclass(slots=True)
class ClosurePart:
    """The facts of one predicate (or class) as N-Triples pieces: subjects and objects as
    codes into the term dictionary, the predicate (and a class object) as one N3 term."""

    subjects: IntArray
    predicate: str
    objects: IntArray | str


def closure_parts(engine: Engine, terms: StrArray) -> list[ClosurePart]:
    """Every fact of the engine, per predicate (literal subjects dropped)."""
    starts: Any = pc.starts_with(terms, '"')
    literal = starts.to_numpy(zero_copy_only=False)
    parts: list[ClosurePart] = []
    for pred, rel in engine.relations.items():
        # every row live: the columns as they are, not copies
        cols = rel.cols if rel.live is None else engine.rows(pred)
        if not cols or not len(cols[0]) or (rel.arity != 2 and not pred.startswith(_CLASS_PREFIX)):
            continue
        subj = cols[0].astype(np.int64, copy=False)
        keep: Any = slice(None)
        if literal.any():
            keep = ~literal[subj]
        if pred.startswith(_CLASS_PREFIX):
            parts.append(ClosurePart(subj[keep], RDF_TYPE, pred[len(_CLASS_PREFIX) :]))
        else:
            parts.append(ClosurePart(subj[keep], pred, cols[1].astype(np.int64, copy=False)[keep]))
    return parts


def write_closure(path: str | Path, engine: Engine, terms: StrArray) -> int:
    """Write every fact of the engine as N-Triples; returns the number written.

    Lines are built a chunk at a time from the term codes: the subject, then the predicate
    as the separator, then the object taken from the terms with the line end already on.
    """
    step = _WRITE_CHUNK
    line_ends: Any = pc.binary_join_element_wise(terms, pa.scalar(" .\n"), "")
    written = 0
    with open(path, "wb") as fh:
        for part in closure_parts(engine, terms):
            for start in range(0, len(part.subjects), step):
                subjects = terms.take(pa.array(part.subjects[start : start + step]))
                if isinstance(part.objects, str):
                    end = pa.scalar(f"{part.objects} .\n", pa.string())
                    lines: Any = pc.binary_join_element_wise(subjects, end, f" {part.predicate} ")
                else:
                    objects = line_ends.take(pa.array(part.objects[start : start + step]))
                    lines = pc.binary_join_element_wise(subjects, objects, f" {part.predicate} ")
                fh.write(_string_data(lines))
                written += len(lines)
    return written


def _string_data(lines: Any) -> memoryview:
    # a fresh string array without nulls: its data buffer is the lines back to back
    offsets = np.frombuffer(lines.buffers()[1], np.int32, count=len(lines) + 1)
    data = lines.buffers()[2]
    if data is None:
        return memoryview(b"")
    return memoryview(data)[int(offsets[0]) : int(offsets[-1])]


def write_ntriples(path: str | Path, s: StrArray, p: StrArray, o: StrArray) -> int:
    """Write triples given as N3 columns; returns the number written."""
    step = 1_000_000
    with open(path, "wb") as fh:
        for start in range(0, len(s), step):
            parts = [col.slice(start, step) for col in (s, p, o)]
            lines: Any = pc.binary_join_element_wise(*parts, pa.scalar(".\n"), " ")
            fh.write(_string_data(lines))
    return len(s)


def materialise_rdf(
    in_path: str | Path, out_path: str | Path, fmt: str | None = None
) -> RdfSummary:
    """Closure of an RDF graph under the OWL 2 RL subset its own axioms state.

    Args:
        in_path: N-Triples (`.nt`) or any format rdflib reads (Turtle by its suffix, or `fmt`).
        out_path: where the closure is written, as N-Triples (input triples included).
        fmt: rdflib format name when the suffix does not tell.

    Example:
        >>> materialise_rdf("data.ttl", "closure.nt").triples_out  # doctest: +SKIP
        1234
    """
    t0 = time.perf_counter()
    s, p, o = read_triples(in_path, fmt)
    rules, _ = compile_triples(s, p, o)
    t1 = time.perf_counter()
    engine, terms = reason_triples(s, p, o, rules)
    t2 = time.perf_counter()
    out = write_closure(out_path, engine, terms)
    t3 = time.perf_counter()
    return RdfSummary(len(s), out, len(rules), t1 - t0, t2 - t1, t3 - t2)


_EXPORT_EDGES: dict[RelType, str] = {
    RelType.HOLDS_SHARES: "holdsShares",
    RelType.HOLDS_POSITION: "holdsPosition",
    RelType.RELATIVE_OF: "relativeOf",
    RelType.GUARANTEES: "guarantees",
    RelType.BORROWED: "borrowed",
    RelType.OWNS_ACCOUNT: "ownsAccount",
    RelType.TRANSFERRED: "transferredTo",
    RelType.USES_DEVICE: "usesDevice",
}
ENTITY_BASE = "https://riskgraph.dev/id/"


def export_rdf(store: GraphStore, out_path: str | Path, include_inferred: bool = True) -> int:
    """Dump the knowledge graph as N-Triples under the riskgraph ontology.

    Nodes become `<https://riskgraph.dev/id/{id}>` typed with their label class; base edges
    become the ontology's base properties (positions and kinships also as their specific
    sub-property, e.g. `rg:directorOf`, `rg:spouseOf`); stored inferred facts are added
    with their predicate when it is an ontology property. Returns the number of triples.
    """
    from reasoning.materialise import ROLE_PREDICATES
    from reasoning.owl import load_ontology

    nid_to_iri: dict[Any, str] = {}
    s_parts: list[list[str]] = [[], [], []]

    def add(subj: list[str], pred: str, obj: list[str]) -> None:
        s_parts[0].extend(subj)
        s_parts[1].extend([pred] * len(subj))
        s_parts[2].extend(obj)

    for label in Label:
        for batch in store.node_batches(label):
            iris = [URIRef(ENTITY_BASE + str(i)).n3() for i in batch.column("id").to_pylist()]
            nid_to_iri.update(zip(batch.column("nid").to_pylist(), iris, strict=True))
            add(iris, RDF_TYPE, [URIRef(RG + label.value).n3()] * len(iris))

    def rg(name: str) -> str:
        return URIRef(RG + name).n3()

    for rel_type, name in _EXPORT_EDGES.items():
        for batch in store.edge_batches(rel_type):
            src = [nid_to_iri[n] for n in batch.column("src").to_pylist()]
            dst = [nid_to_iri[n] for n in batch.column("dst").to_pylist()]
            add(src, rg(name), dst)
            if rel_type is RelType.HOLDS_POSITION:
                roles = (
                    batch.column("role").to_pylist()
                    if "role" in batch.column_names
                    else (batch.column("key").to_pylist())
                )
                for a, b, role in zip(src, dst, roles, strict=True):
                    if role in ROLE_PREDICATES:
                        add([a], rg(ROLE_PREDICATES[role]), [b])
            if rel_type is RelType.RELATIVE_OF and "relation" in batch.column_names:
                relations: list[Any] = batch.column("relation").to_pylist()
                for a, b, rel in zip(src, dst, relations, strict=True):
                    if rel in ("spouse", "sibling"):
                        add([a], rg(f"{rel}Of"), [b])
                    elif rel == "parent":
                        add([b], rg("parentOf"), [a])
                    elif rel == "child":
                        add([a], rg("parentOf"), [b])
    if include_inferred:
        props = compile_owl(load_ontology()).properties
        for batch in store.inferred_batches():
            preds: list[Any] = batch.column("predicate").to_pylist()
            for pred_name, src_nid, dst_nid in zip(
                preds,
                batch.column("src").to_pylist(),
                batch.column("dst").to_pylist(),
                strict=True,
            ):
                if pred_name in props:
                    add([nid_to_iri[src_nid]], rg(pred_name), [nid_to_iri[dst_nid]])
    cols = [pa.array(c, pa.string()) for c in s_parts]
    return write_ntriples(out_path, cols[0], cols[1], cols[2])


def ontology_ntriples() -> str:
    """The ontology as N-Triples text (to prepend to exported data for other reasoners)."""
    from reasoning.owl import load_ontology

    return load_ontology().serialize(format="nt")
