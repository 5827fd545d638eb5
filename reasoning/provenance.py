"""Explanations: the derivation tree of an inferred fact, down to source rows (file, line).

The engine keeps one derivation per fact (the first found): the rule and the fids of the
premises. `materialise` turns those into the `premises` JSON of each stored inferred fact:

- `{"kind": "edge", "type": "HOLDS_SHARES", "src": id, "dst": id, "key": str}` a stored edge
- `{"kind": "node", "id": id, "prop": "phone"|None}` a node (its label or a property)
- `{"kind": "inferred", "predicate": p, "src": id, "dst": id}` another stored inferred fact
- `{"kind": "derived", "predicate": p, "args": [...], "rule": r, "premises": [...]}` a helper
  fact that is not stored (e.g. one vote counted in an aggregate), embedded in place

`explain` expands these recursively against the store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kg.model import Direction, RelType
from kg.store import GraphStore
from reasoning.engine import EXPLICIT, Engine


@dataclass(slots=True)
class DerivationTree:
    """One fact and how it was obtained: a rule over child facts, or a source row."""

    predicate: str
    args: list[Any]
    rule: str | None = None
    source: str | None = None
    line: int | None = None
    value: float | None = None
    children: list[DerivationTree] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: `{"fact": {...}, "rule": ..., "source": {...}, "premises": [...]}`."""
        fact: dict[str, Any] = {"predicate": self.predicate, "args": self.args}
        if self.value is not None:
            fact["value"] = self.value
        out: dict[str, Any] = {"fact": fact, "rule": self.rule}
        if self.source is not None:
            out["source"] = {"file": self.source, "line": self.line}
        out["premises"] = [c.to_dict() for c in self.children]
        return out

    def leaves(self) -> list[DerivationTree]:
        """The source facts the derivation rests on."""
        if not self.children:
            return [self]
        return [leaf for c in self.children for leaf in c.leaves()]


def explain_engine(
    engine: Engine,
    predicate: str,
    args: tuple[Any, ...],
    describe: Callable[[str, int], DerivationTree | None] | None = None,
) -> DerivationTree | None:
    """Derivation tree of a fact held by an in-memory engine (explicit facts are leaves).

    `describe(pred, fid)` may turn an explicit fact into a leaf with its source.
    """
    rel = engine.relations.get(predicate)
    if rel is None or not rel.cols:
        return None
    cols = rel.coerce([np.asarray([a]) for a in args])
    row = int(rel.find(cols)[0])
    if row < 0:
        return None
    return _engine_tree(engine, predicate, row, describe, depth=0)


def _engine_tree(
    engine: Engine,
    pred: str,
    row: int,
    describe: Callable[[str, int], DerivationTree | None] | None,
    depth: int,
) -> DerivationTree:
    rel = engine.relations[pred]
    args = [c[row].item() for c in rel.cols]
    rule_index = int(rel.rule[row])
    if rule_index == EXPLICIT:
        leaf = describe(pred, int(rel.fids[row])) if describe else None
        return leaf or DerivationTree(pred, args, rule="explicit")
    rule = engine.rules[rule_index]
    node = DerivationTree(pred, args, rule=rule.id)
    premises: list[tuple[str, int]] = []
    if rule.aggregate is not None:
        node.value = float(
            next(a for a, t in zip(args, rule.head_args, strict=True) if t is rule.aggregate)
        )
        premises = aggregate_premises(engine, rule_index, args)
    else:
        for slot, atom in enumerate(rule.positives):
            fid = int(rel.premises[row, slot])
            premises.append((atom.pred, fid))
    for ppred, fid in premises:
        prow = engine.fid_row(ppred, fid)
        if prow >= 0:
            node.children.append(_engine_tree(engine, ppred, prow, describe, depth + 1))
    return node


def aggregate_premises(engine: Engine, rule_index: int, args: list[Any]) -> list[tuple[str, int]]:
    """The body facts that contributed to one group of an aggregate rule."""
    from reasoning.datalog import Aggregate, Var

    rule = engine.rules[rule_index]
    _, _, bind = engine.aggregate_groups(rule_index)
    mask = None
    for term, value in zip(rule.head_args, args, strict=True):
        if isinstance(term, Var):
            cond = bind.vars[term.name] == value
            mask = cond if mask is None else mask & cond
        elif isinstance(term, Aggregate):
            continue
    rows = range(bind.n) if mask is None else mask.nonzero()[0]
    out: list[tuple[str, int]] = []
    for r in rows:
        for slot, atom in enumerate(rule.positives):
            out.append((atom.pred, int(bind.fids[slot][r])))
    return out


def explain(store: GraphStore, subject: str, predicate: str, object: str) -> DerivationTree | None:
    """Derivation tree of the stored inferred fact `predicate(subject, object)`.

    Returns None when the store holds no such inferred fact. Leaves are source rows with
    their file and line.

    Example:
        >>> tree = explain(store, "P1", "controls", "C9")  # doctest: +SKIP
        >>> tree.to_dict()["rule"]  # doctest: +SKIP
        'control_aggregated'
    """
    subject_id = store.resolve(subject) or subject
    object_id = store.resolve(object) or object
    return _stored_tree(store, subject_id, predicate, object_id, set())


def _stored_tree(
    store: GraphStore, src: str, predicate: str, dst: str, seen: set[tuple[str, str, str]]
) -> DerivationTree | None:
    facts = store.get_inferred(src, predicate, dst)
    if not facts:
        return None
    fact = facts[0]
    node = DerivationTree(predicate, [src, dst], rule=fact.rule, value=fact.value)
    key = (src, predicate, dst)
    if key in seen:  # first-found derivations are well-founded; guard against bad data anyway
        return node
    seen = seen | {key}
    node.children = [_premise_tree(store, p, seen) for p in fact.premises]
    return node


def _premise_tree(
    store: GraphStore, premise: dict[str, Any], seen: set[tuple[str, str, str]]
) -> DerivationTree:
    kind = premise.get("kind")
    if kind == "edge":
        rel_type = RelType(premise["type"])
        args = [premise["src"], premise["dst"]]
        leaf = DerivationTree(rel_type.value, args, rule="source")
        if premise.get("key"):
            leaf.args.append(premise["key"])
        for edge in store.neighbours(premise["src"], rel_type, Direction.OUT):
            if edge.dst == premise["dst"] and edge.key == premise.get("key", ""):
                if edge.provenance is not None:
                    leaf.source, leaf.line = edge.provenance.source, edge.provenance.line
                break
        return leaf
    if kind == "node":
        node = store.get_node(premise["id"])
        label = node.label.value if node is not None else "node"
        args = [premise["id"]]
        if premise.get("prop"):
            args += [premise["prop"], node.props.get(premise["prop"]) if node else None]
        leaf = DerivationTree(label, args, rule="source")
        if node is not None and node.provenance is not None:
            leaf.source, leaf.line = node.provenance.source, node.provenance.line
        return leaf
    if kind == "inferred":
        sub = _stored_tree(store, premise["src"], premise["predicate"], premise["dst"], seen)
        if sub is not None:
            return sub
        return DerivationTree(premise["predicate"], [premise["src"], premise["dst"]])
    node_d = DerivationTree(
        premise.get("predicate", "?"),
        list(premise.get("args", [])),
        rule=premise.get("rule"),
        value=premise.get("value"),
    )
    node_d.children = [_premise_tree(store, p, seen) for p in premise.get("premises", [])]
    return node_d
