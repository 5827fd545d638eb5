"""Reasoning benchmark: ownership workload, riskgraph engine vs owlrl vs reasonable.

Workload: a random control forest of companies (each company is directly controlled by a
person, or by one of the 50 companies created just before it), spouses among persons, and
the ontology `directlyControls ⊑ controls`, `controls` transitive, `controlledBy` inverse
of `controls`, `sameControllerAs ≡ controlledBy ∘ controls`, `spouseOf` symmetric; written
as N-Triples. Every reasoner reads the same file; closures are compared on the workload's
five properties. owlrl runs at the small size only (it is pure Python).

    .venv/bin/python bench/bench_reasoning.py [--small 2000] [--large 200000] [--no-owlrl]

`reasonable` is an optional, benchmark-only dependency (`pip install reasonable`).
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

import numpy as np
from rdflib import Graph

from reasoning.rdf import materialise_rdf, read_triples

NS = "urn:bench#"
PROPS = ("directlyControls", "controls", "controlledBy", "sameControllerAs", "spouseOf")
ONTOLOGY = f"""
@prefix : <{NS}> .
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
:directlyControls a owl:ObjectProperty ; rdfs:subPropertyOf :controls .
:controls a owl:ObjectProperty , owl:TransitiveProperty .
:controlledBy a owl:ObjectProperty ; owl:inverseOf :controls .
:sameControllerAs a owl:ObjectProperty ; owl:propertyChainAxiom ( :controlledBy :controls ) .
:spouseOf a owl:ObjectProperty , owl:SymmetricProperty .
"""


def write_workload(path: Path, companies: int, seed: int = 7) -> int:
    """Write ontology + control forest; returns the number of data triples."""
    rng = np.random.default_rng(seed)
    persons = max(companies // 2, 2)
    by_person = rng.random(companies) < 0.35
    by_person[0] = True
    back = rng.integers(1, 51, companies)
    parent_company = np.maximum(np.arange(companies) - back, 0)
    person = rng.integers(0, persons, companies)
    lines = [
        f"<{NS}p{person[i]}> <{NS}directlyControls> <{NS}c{i}> ."
        if by_person[i] or i == 0
        else f"<{NS}c{parent_company[i]}> <{NS}directlyControls> <{NS}c{i}> ."
        for i in range(companies)
    ]
    married = np.flatnonzero(rng.random(persons // 2) < 0.3)
    lines += [f"<{NS}p{2 * k}> <{NS}spouseOf> <{NS}p{2 * k + 1}> ." for k in married]
    ontology = Graph().parse(data=ONTOLOGY, format="turtle").serialize(format="nt")
    path.write_text(ontology + "\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


def data_triples(triples: object) -> set[tuple[str, str, str]]:
    keep = {NS + p for p in PROPS}
    out = set()
    for s, p, o in triples:  # type: ignore[attr-defined]
        if str(p) in keep:
            out.add((str(s), str(p), str(o)))
    return out


def run_ours(path: Path, out: Path) -> tuple[float, float, set[tuple[str, str, str]] | None, int]:
    gc.collect()
    t0 = time.perf_counter()
    summary = materialise_rdf(path, out)
    wall = time.perf_counter() - t0
    closure = None
    if summary.triples_out < 200_000:
        closure = data_triples(Graph().parse(out, format="nt"))
    size = _count_data_lines(out)
    return wall, summary.reason_seconds, closure, size


def read_closure(path: Path) -> set[tuple[str, str, str]]:
    """The workload triples of an N-Triples file (fast reader; IRIs without brackets)."""
    s, p, o = (col.to_pylist() for col in read_triples(path))
    return data_triples((a[1:-1], b[1:-1], c[1:-1]) for a, b, c in zip(s, p, o, strict=True))


def _count_data_lines(path: Path) -> int:
    keep = tuple(f"<{NS}{p}>" for p in PROPS)
    n = 0
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            parts = line.split(" ", 2)
            if len(parts) == 3 and parts[1] in keep:
                n += 1
    return n


def run_owlrl(path: Path) -> tuple[float, set[tuple[str, str, str]]]:
    import owlrl

    gc.collect()
    t0 = time.perf_counter()
    g = Graph().parse(path, format="nt")
    owlrl.DeductiveClosure(owlrl.OWLRL_Semantics).expand(g)
    wall = time.perf_counter() - t0
    return wall, data_triples(g)


def run_reasonable(path: Path) -> tuple[float, set[tuple[str, str, str]]] | None:
    try:
        import reasonable
    except ImportError:
        return None
    ttl = path.with_suffix(".ttl")
    ttl.write_bytes(path.read_bytes())  # N-Triples is Turtle; reasonable picks the parser by suffix
    gc.collect()
    t0 = time.perf_counter()
    reasoner = reasonable.PyReasoner()
    reasoner.load_file(str(ttl))
    triples = reasoner.reason()
    wall = time.perf_counter() - t0
    return wall, data_triples(triples)


def strip(uri_triples: set[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
    return {(s, p, o) for s, p, o in uri_triples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=200_000)
    parser.add_argument("--no-owlrl", action="store_true")
    args = parser.parse_args()
    rows: list[tuple[str, int, int, int, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        for size in (args.small, args.large):
            data = tmpdir / f"workload_{size}.nt"
            n_in = write_workload(data, size)
            ours_wall, ours_reason, ours_closure, ours_size = run_ours(
                data, tmpdir / f"out_{size}.nt"
            )
            reference: set[tuple[str, str, str]] | None = None
            if size == args.small and not args.no_owlrl:
                owl_wall, owl_closure = run_owlrl(data)
                reference = owl_closure
                rows.append(("owlrl", size, n_in, len(owl_closure), owl_wall, "reference"))
            res = run_reasonable(data)
            if res is not None:
                r_wall, r_closure = res
                note = ""
                if reference is not None:
                    note = "= owlrl" if r_closure == reference else _diff_note(r_closure, reference)
                elif ours_closure is None:
                    note = (
                        "no sameControllerAs"
                        if not any(p == NS + "sameControllerAs" for _, p, _ in r_closure)
                        else ""
                    )
                rows.append(("reasonable", size, n_in, len(r_closure), r_wall, note))
                if ours_closure is None:
                    # large size: compare with reasonable on the properties it computes
                    ours_closure_large = read_closure(tmpdir / f"out_{size}.nt")
                    if ours_closure_large is not None:
                        props_r = {p for _, p, _ in r_closure}
                        same = {t for t in ours_closure_large if t[1] in props_r} == r_closure
                        verdict = (
                            "ours ⊇ reasonable, equal on its properties"
                            if same
                            else ("differs from ours")
                        )
                        rows[-1] = (*rows[-1][:5], f"{rows[-1][5]}; {verdict}")
            note = f"reason {ours_reason:.2f}s"
            if reference is not None and ours_closure is not None:
                note += (
                    "; = owlrl"
                    if ours_closure == reference
                    else "; " + _diff_note(ours_closure, reference)
                )
            rows.append(("riskgraph", size, n_in, ours_size, ours_wall, note))
    print(
        "| reasoner | companies | data triples in | closure (workload properties) | wall s "
        "| triples/s | notes |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, size, n_in, closure, wall, note in rows:
        rate = closure / wall if wall else float("inf")
        print(f"| {name} | {size:,} | {n_in:,} | {closure:,} | {wall:.2f} | {rate:,.0f} | {note} |")
    owl = [r for r in rows if r[0] == "owlrl"]
    ours_large = [r for r in rows if r[0] == "riskgraph" and r[1] == args.large]
    if owl and ours_large:
        ratio = (ours_large[0][3] / ours_large[0][4]) / (owl[0][3] / owl[0][4])
        print(f"\nthroughput riskgraph@{args.large:,} / owlrl@{args.small:,}: {ratio:,.0f}x")


def _diff_note(got: set[tuple[str, str, str]], ref: set[tuple[str, str, str]]) -> str:
    missing = ref - got
    extra = got - ref
    props = sorted({p.rsplit("#", 1)[-1] for _, p, _ in missing | extra})
    return f"differs: {len(missing)} missing, {len(extra)} extra ({', '.join(props)})"


if __name__ == "__main__":
    main()
