"""Rule language: the AST of Horn rules and a parser for the `.dl` rule files.

Syntax (one rule per statement, ending with a full stop; `%` starts a comment)::

    label: head(X, Y) :- body1(X, Z), body2(Z, Y), Z != X, not blocked(X, Y).
    total(X, C, sum(V)) :- votes(X, C, Via, V).
    fact(a, 1).

- Predicates are names followed by `(` (ontology classes such as `Person(X)` are unary
  predicates). Other names starting with an upper-case letter or `_` are variables; a lone `_`
  is a fresh variable each time; other lower-case names are string constants.
- Constants are numbers or double-quoted strings (strings are interned by the caller).
- Comparisons: `=`, `!=`, `<`, `<=`, `>`, `>=` between variables and constants.
- `not atom` is stratified negation: the atom's predicate must be fully computed first.
- A head argument `sum(V)`, `count(V)`, `min(V)` or `max(V)` aggregates over the distinct
  bindings of the body's variables, grouped by the other head arguments.
- The optional `label:` names the rule in provenance; without it the rule is named
  `file:line`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

AGGREGATES = frozenset({"sum", "count", "min", "max"})
COMPARISONS = frozenset({"=", "!=", "<", "<=", ">", ">="})


class RuleSyntaxError(ValueError):
    """A rule file could not be parsed or a rule is unsafe; the message names the line."""


@dataclass(frozen=True, slots=True)
class Var:
    name: str


@dataclass(frozen=True, slots=True)
class Const:
    value: int | float | str


Term = Var | Const


@dataclass(frozen=True, slots=True)
class Aggregate:
    func: str
    var: Var


@dataclass(frozen=True, slots=True)
class Atom:
    pred: str
    args: tuple[Term, ...]


@dataclass(frozen=True, slots=True)
class Negation:
    atom: Atom


@dataclass(frozen=True, slots=True)
class Comparison:
    op: str
    left: Term
    right: Term


Literal = Atom | Negation | Comparison


@dataclass(frozen=True, slots=True)
class Rule:
    """`head_pred(head_args) :- body`; `id` names the rule in provenance."""

    id: str
    head_pred: str
    head_args: tuple[Term | Aggregate, ...]
    body: tuple[Literal, ...]
    source: str = ""
    positives: tuple[Atom, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "positives", tuple(lit for lit in self.body if isinstance(lit, Atom))
        )

    @property
    def aggregate(self) -> Aggregate | None:
        for arg in self.head_args:
            if isinstance(arg, Aggregate):
                return arg
        return None


def rule_vars(terms: tuple[Term, ...]) -> set[str]:
    return {t.name for t in terms if isinstance(t, Var)}


def check_safety(rule: Rule) -> None:
    """Every head, negated and compared variable must be bound by a positive body atom."""
    bound: set[str] = set()
    for atom in rule.positives:
        bound |= rule_vars(atom.args)
    needed: set[str] = set()
    for arg in rule.head_args:
        if isinstance(arg, Var):
            needed.add(arg.name)
        elif isinstance(arg, Aggregate):
            needed.add(arg.var.name)
    for lit in rule.body:
        if isinstance(lit, Negation):
            needed |= rule_vars(lit.atom.args)
        elif isinstance(lit, Comparison):
            needed |= rule_vars((lit.left, lit.right))
    unbound = needed - bound
    if unbound:
        raise RuleSyntaxError(
            f"{rule.source}: rule {rule.id!r} is unsafe, unbound variables {sorted(unbound)}"
        )


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<comment>%[^\n]*)
      | (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
      | (?P<implies>:-)
      | (?P<op>!=|<=|>=|=|<|>)
      | (?P<punct>[(),.:])
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


@dataclass(slots=True)
class _Token:
    kind: str
    text: str
    line: int


def _tokenise(text: str, origin: str) -> Iterator[_Token]:
    pos, line = 0, 1
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            if text[pos:].strip() == "":
                return
            raise RuleSyntaxError(f"{origin}:{line}: unexpected text {text[pos : pos + 20]!r}")
        kind = match.lastgroup or ""
        start_line = line + text.count("\n", pos, match.start(kind))
        line += text.count("\n", pos, match.end())
        pos = match.end()
        if kind != "comment":
            yield _Token(kind, match.group(kind), start_line)


class _Parser:
    def __init__(self, text: str, origin: str) -> None:
        self.tokens = list(_tokenise(text, origin))
        self.pos = 0
        self.origin = origin
        self.fresh = 0

    def peek(self, offset: int = 0) -> _Token | None:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else None

    def take(self, text: str | None = None, kind: str | None = None) -> _Token:
        tok = self.peek()
        if tok is None:
            raise RuleSyntaxError(f"{self.origin}: unexpected end of rules")
        if (text is not None and tok.text != text) or (kind is not None and tok.kind != kind):
            raise RuleSyntaxError(
                f"{self.origin}:{tok.line}: expected {text or kind}, found {tok.text!r}"
            )
        self.pos += 1
        return tok

    def rules(self) -> list[Rule]:
        out: list[Rule] = []
        while self.peek() is not None:
            out.append(self.rule())
        return out

    def rule(self) -> Rule:
        first = self.take(kind="name")
        line = first.line
        label: str | None = None
        nxt = self.peek()
        if nxt is not None and nxt.text == ":":
            label = first.text
            self.take(":")
            first = self.take(kind="name")
        head_pred, head_args = self.atom_rest(first, head=True)
        body: list[Literal] = []
        if self.peek() is not None and self.peek().text == ":-":  # type: ignore[union-attr]
            self.take(":-")
            body.append(self.literal())
            while self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
                self.take(",")
                body.append(self.literal())
        self.take(".")
        source = f"{self.origin}:{line}"
        rule = Rule(label or source, head_pred, head_args, tuple(body), source)
        check_safety(rule)
        return rule

    def atom_rest(
        self, name: _Token, head: bool = False
    ) -> tuple[str, tuple[Term | Aggregate, ...]]:
        self.take("(")
        args: list[Term | Aggregate] = [self.arg(head)]
        while self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
            self.take(",")
            args.append(self.arg(head))
        self.take(")")
        return name.text, tuple(args)

    def arg(self, head: bool) -> Term | Aggregate:
        tok = self.peek()
        nxt = self.peek(1)
        if (
            head
            and tok is not None
            and tok.text in AGGREGATES
            and nxt is not None
            and nxt.text == "("
        ):
            self.pos += 2
            var = self.term()
            self.take(")")
            if not isinstance(var, Var):
                raise RuleSyntaxError(f"{self.origin}:{tok.line}: aggregate of a constant")
            return Aggregate(tok.text, var)
        return self.term()

    def term(self) -> Term:
        tok = self.take()
        if tok.kind == "number":
            number = float(tok.text)
            return Const(int(number) if number.is_integer() and "." not in tok.text else number)
        if tok.kind == "string":
            return Const(bytes(tok.text[1:-1], "utf-8").decode("unicode_escape"))
        if tok.kind == "name":
            if tok.text == "_":
                self.fresh += 1
                return Var(f"_{self.fresh}")
            if tok.text[0].isupper() or tok.text[0] == "_":
                return Var(tok.text)
            return Const(tok.text)
        raise RuleSyntaxError(f"{self.origin}:{tok.line}: expected a term, found {tok.text!r}")

    def literal(self) -> Literal:
        tok = self.peek()
        nxt = self.peek(1)
        if tok is None:
            raise RuleSyntaxError(f"{self.origin}: unexpected end in a rule body")
        if tok.kind == "name" and tok.text == "not" and nxt is not None and nxt.kind == "name":
            self.pos += 1
            name = self.take(kind="name")
            pred, args = self.atom_rest(name)
            return Negation(Atom(pred, _terms(args)))
        if tok.kind == "name" and nxt is not None and nxt.text == "(":
            self.pos += 1
            pred, args = self.atom_rest(tok)
            return Atom(pred, _terms(args))
        left = self.term()
        op = self.take(kind="op")
        right = self.term()
        return Comparison(op.text, left, right)


def _terms(args: tuple[Term | Aggregate, ...]) -> tuple[Term, ...]:
    return tuple(a for a in args if not isinstance(a, Aggregate))


def parse_rules(text: str, origin: str = "<rules>") -> list[Rule]:
    """Parse rule text into rules.

    Example:
        >>> [r.id for r in parse_rules("r1: p(X, Y) :- q(Y, X).")]
        ['r1']
    """
    return _Parser(text, origin).rules()


def load_rules(path: str | Path) -> list[Rule]:
    """Parse a `.dl` file; rule ids default to `file-name:line`."""
    path = Path(path)
    return parse_rules(path.read_text(encoding="utf-8"), path.name)


def builtin_rules_path(name: str = "banking") -> Path:
    """Path of a rule file shipped in `reasoning/rules/`."""
    return Path(__file__).with_name("rules") / f"{name}.dl"
