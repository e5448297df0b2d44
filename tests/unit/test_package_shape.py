"""The package's promises about itself: a light import and the layering of its modules."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "llmdispatcher"


def test_import_is_light_and_touches_no_network_code() -> None:
    code = (
        "import sys, llmdispatcher; "
        "heavy = [m for m in ('aiohttp', 'orjson', 'yaml', 'click', 'redis', 'xllamacpp') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _imports(path: Path) -> set[str]:
    """The llmdispatcher modules a file imports (relative imports resolved)."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                found.add(f"{base}.{node.module}" if node.module else base)
            elif node.module and node.module.startswith("llmdispatcher"):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("llmdispatcher"))
    return found


def test_layers_point_one_way() -> None:
    """types/errors/clock/redaction import nothing of ours; config and settings (plain data)
    import no routing or resilience module; vendors never import the dispatcher; nothing but
    ``python -m`` imports the gateway or the CLI."""
    leaves = {"types", "errors", "clock", "redaction"}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        imports = _imports(path)
        top = rel.parts[0].removesuffix(".py")
        if top in leaves:
            allowed = {"llmdispatcher.types"} if top == "errors" else set()
            assert imports <= allowed, f"{rel} imports {imports - allowed}"
        if top == "vendors":
            assert not any(
                i.startswith(("llmdispatcher.dispatcher", "llmdispatcher.routing")) for i in imports
            ), rel
        if top in ("config", "settings"):  # plain data: the layers read it, not the reverse
            assert not any(
                i.startswith(("llmdispatcher.routing", "llmdispatcher.resilience")) for i in imports
            ), f"{rel} imports {imports}"
        if top == "settings":
            allowed = {"llmdispatcher.types", "llmdispatcher.errors"}
            assert all(i in allowed or i.startswith("llmdispatcher.settings") for i in imports), rel
        if top not in ("cli", "gateway", "__main__"):
            assert not any(
                i.startswith(("llmdispatcher.cli", "llmdispatcher.gateway")) for i in imports
            ), rel
