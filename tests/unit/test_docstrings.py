"""Public functions of lm_eval_bias/scoring, metrics and leaderboard keep Google-style docstrings.

Read from the source with `ast` (nothing is imported, so no model library is needed), every public
function, and every public method of a public class (public: no leading underscore), has a docstring;
one that takes parameters names each of them under ``Args:``; one that returns a value has
``Returns:`` (a generator or context manager: ``Yields:``); one that raises an exception itself
names it under ``Raises:``. A dataclass names its fields under ``Attributes:``, and a class whose
constructor takes parameters names them under ``Args:`` or ``Attributes:``. Properties are documented
as attributes (one line saying what the value is, Google style), so they need no ``Returns:``.
Nested helpers and lambdas are not checked. Each failure names the offending function.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "lm_eval_bias"
PACKAGES = ("scoring", "metrics", "leaderboard")
MODULES = sorted(path for package in PACKAGES for path in (ROOT / package).glob("*.py"))

SECTIONS = ("Args", "Attributes", "Returns", "Yields", "Raises", "Note", "Example", "Examples")
_HEADER = re.compile(rf"^({'|'.join(SECTIONS)}):\s*$")
_ENTRY = re.compile(r"^ {2,4}(\*{0,2}\w+)\b[^:]*:")  # "    name (type): text" under a section header


def sections(docstring: str) -> dict[str, list[str]]:
    """Split a cleaned docstring into its Google-style sections.

    Args:
        docstring: the docstring as ``ast.get_docstring`` gives it (indentation cleaned).

    Returns:
        Section name (``Args``, ``Returns``, ...) -> the names its entries start with: parameter,
        attribute or exception names for ``Args``/``Attributes``/``Raises``, the first word of each
        entry line otherwise. A section present with free text only maps to an empty list.
    """
    found: dict[str, list[str]] = {}
    current = None
    for line in docstring.splitlines():
        header = _HEADER.match(line)
        if header:
            current = found.setdefault(header[1], [])
        elif line and not line[0].isspace():
            current = None  # back to prose
        elif current is not None and (entry := _ENTRY.match(line)):
            current.append(entry[1])
    return found


def _own_nodes(function: ast.AST):
    """The nodes of a function's own body: nested functions, lambdas and classes left out."""
    stack = list(ast.iter_child_nodes(function))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _decorators(node: ast.AST) -> set[str]:
    names = set()
    for decorator in getattr(node, "decorator_list", []):
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        names.add(target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", ""))
    return names


def _parameters(function: ast.FunctionDef, method: bool) -> list[str]:
    args = function.args
    positional = [*args.posonlyargs, *args.args]
    if method and "staticmethod" not in _decorators(function):
        positional = positional[1:]  # self / cls
    names = [a.arg for a in positional] + [a.arg for a in args.kwonlyargs]
    if args.vararg:
        names.append("*" + args.vararg.arg)
    if args.kwarg:
        names.append("**" + args.kwarg.arg)
    return names


def _raised(function: ast.AST) -> set[str]:
    names = set()
    for node in _own_nodes(function):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id[:1].isupper():
                names.add(exc.id)
    return names


def function_problems(function: ast.FunctionDef, name: str, method: bool = False) -> list[str]:
    """What a public function's docstring lacks.

    Args:
        function: the function's (or method's) ``def`` node.
        name: how to name it in the report, e.g. ``scoring/causal.py:score_continuations``.
        method: whether it is a method (its first parameter, unless a staticmethod, is not documented).

    Returns:
        One line per problem, each starting with ``name``; empty when the docstring is complete.
    """
    docstring = ast.get_docstring(function)
    if not docstring:
        return [f"{name}: no docstring"]
    found = sections(docstring)
    problems = []
    if "property" in _decorators(function) or "cached_property" in _decorators(function):
        return problems  # documented as an attribute
    parameters = _parameters(function, method)
    if parameters:
        if "Args" not in found:
            problems.append(f"{name}: no Args: section (parameters {', '.join(parameters)})")
        else:
            listed = {entry.lstrip("*") for entry in found["Args"]}
            missing = [p for p in parameters if p.lstrip("*") not in listed]
            if missing:
                problems.append(f"{name}: Args: does not name {', '.join(missing)}")
    own = list(_own_nodes(function))
    generator = any(isinstance(node, (ast.Yield, ast.YieldFrom)) for node in own)
    returns_none = isinstance(function.returns, ast.Constant) and function.returns.value is None
    returns = any(
        isinstance(node, ast.Return)
        and node.value is not None
        and not (isinstance(node.value, ast.Constant) and node.value.value is None)
        for node in own
    )
    if generator and not ({"Yields", "Returns"} & set(found)):
        problems.append(f"{name}: no Yields: section")
    elif returns and not returns_none and "Returns" not in found:
        problems.append(f"{name}: no Returns: section")
    for exception in sorted(_raised(function)):
        if exception not in found.get("Raises", []):
            problems.append(f"{name}: raises {exception}, not named under Raises:")
    return problems


def class_problems(cls: ast.ClassDef, name: str) -> list[str]:
    """What a public class's docstring and its public methods' docstrings lack.

    Args:
        cls: the class's ``class`` node.
        name: how to name it in the report, e.g. ``leaderboard/results.py:Run``.

    Returns:
        One line per problem; empty when the class and its public methods are documented.
    """
    docstring = ast.get_docstring(cls)
    if not docstring:
        return [f"{name}: no docstring"]
    found = sections(docstring)
    documented = {entry.lstrip("*") for entry in found.get("Attributes", []) + found.get("Args", [])}
    problems = []
    if "dataclass" in _decorators(cls):
        fields = [
            node.target.id
            for node in cls.body
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and not node.target.id[:1] == "_"
        ]
        missing = [field for field in fields if field not in documented]
        if missing:
            problems.append(f"{name}: Attributes: does not name the fields {', '.join(missing)}")
    for node in cls.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if node.name in ("__init__", "__new__"):
            missing = [p for p in _parameters(node, method=True) if p.lstrip("*") not in documented]
            if missing:
                problems.append(f"{name}: the constructor's {', '.join(missing)} not named under Args:/Attributes:")
        if node.name in ("__init__", "__new__", "__post_init__"):
            for exception in sorted(_raised(node) - set(found.get("Raises", []))):
                problems.append(f"{name}: {node.name} raises {exception}, not named under Raises: of the class")
        elif not node.name.startswith("_"):
            problems += function_problems(node, f"{name}.{node.name}", method=True)
    return problems


def module_problems(source: str, name: str) -> list[str]:
    """Every problem of the public functions and classes defined at a module's top level.

    Args:
        source: the module's source text.
        name: the module's path as the report names it.

    Returns:
        One line per problem, in source order.
    """
    problems = []
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            problems += function_problems(node, f"{name}:{node.name}")
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            problems += class_problems(node, f"{name}:{node.name}")
    return problems


@pytest.mark.parametrize("path", MODULES, ids=[str(path.relative_to(ROOT)) for path in MODULES])
def test_public_functions_have_google_style_docstrings(path: Path) -> None:
    problems = module_problems(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert not problems, "Google-style docstring sections missing:\n" + "\n".join(problems)


def test_the_packages_are_found() -> None:
    assert {path.parent.name for path in MODULES} == set(PACKAGES)


BAD = '''
def undocumented(x):
    return x


def no_sections(x, *, y=1):
    """Summary only."""
    return x + y


def half(x, y):
    """Summary.

    Args:
        x: the first.
    """
    if y:
        raise ValueError(y)


def generator(n):
    """Summary.

    Args:
        n: how many.
    """
    yield from range(n)


def fine(x) -> None:
    """Summary.

    Args:
        x (int): a number, which
            takes two lines.

    Raises:
        ValueError: when x is negative.
    """
    if x < 0:
        raise ValueError(x)


def _private(x):
    return x


class Public:
    """A class."""

    def __init__(self, size):
        self.size = size

    def method(self, z):
        """Summary."""
        return z

    @property
    def value(self):
        """The value."""
        return 1
'''


def test_the_check_names_what_is_missing() -> None:
    assert module_problems(BAD, "bad.py") == [
        "bad.py:undocumented: no docstring",
        "bad.py:no_sections: no Args: section (parameters x, y)",
        "bad.py:no_sections: no Returns: section",
        "bad.py:half: Args: does not name y",
        "bad.py:half: raises ValueError, not named under Raises:",
        "bad.py:generator: no Yields: section",
        "bad.py:Public: the constructor's size not named under Args:/Attributes:",
        "bad.py:Public.method: no Args: section (parameters z)",
        "bad.py:Public.method: no Returns: section",
    ]
