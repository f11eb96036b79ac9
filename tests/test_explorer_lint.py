"""The explorer's ES modules pass eslint (pinned in web/package-lock.json), or ``node --check`` where
eslint is not installed; the check fails on a planted syntax error; the page's joined script parses.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from connlab.explore.page import WEB, assemble_script

NODE = shutil.which("node")
ESLINT = WEB / "node_modules" / ".bin" / "eslint"
needs_node = pytest.mark.skipif(NODE is None, reason="needs node (apt-get install nodejs)")


def lint(web: Path) -> subprocess.CompletedProcess:
    """eslint over ``web/js`` with ``web/eslint.config.mjs``; without eslint, ``node --check`` on each module."""
    if ESLINT.exists():
        return subprocess.run([str(ESLINT), "--max-warnings", "0", "js"], cwd=web, capture_output=True, text=True)
    for module in sorted((web / "js").rglob("*.js")):
        with module.open() as source:  # stdin, so that node reads it as a module whatever package.json says
            done = subprocess.run([NODE, "--input-type=module", "--check"], stdin=source, capture_output=True,
                                  text=True)
        if done.returncode:
            return subprocess.CompletedProcess(done.args, done.returncode, done.stdout, f"{module}: {done.stderr}")
    return subprocess.CompletedProcess([], 0, "", "")


def copy_web(tmp_path: Path) -> Path:
    web = tmp_path / "web"
    shutil.copytree(WEB / "js", web / "js")
    shutil.copy(WEB / "eslint.config.mjs", web)
    if (WEB / "node_modules").exists():
        (web / "node_modules").symlink_to((WEB / "node_modules").resolve())
    return web


@needs_node
def test_the_explorer_modules_pass_the_linter():
    done = lint(WEB)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_node
@pytest.mark.parametrize("tool", ["eslint", "node --check"])
def test_the_linter_fails_on_a_planted_syntax_error(tmp_path, monkeypatch, tool):
    if tool == "eslint" and not ESLINT.exists():
        pytest.skip("needs eslint: npm ci --prefix src/connlab/explore/web")
    if tool == "node --check":
        monkeypatch.setattr(sys.modules[__name__], "ESLINT", tmp_path / "no-eslint")
    web = copy_web(tmp_path)
    assert lint(web).returncode == 0
    panel = web / "js" / "panels" / "vit.js"
    panel.write_text(panel.read_text().replace("function show() {", "function show() {{", 1))
    done = lint(web)
    assert done.returncode != 0 and "vit.js" in done.stdout + done.stderr


@pytest.mark.skipif(not ESLINT.exists(), reason="needs eslint: npm ci --prefix src/connlab/explore/web")
def test_eslint_fails_on_an_undefined_name(tmp_path):
    """More than syntax: a name no module declares (a panel using a helper it did not import)."""
    web = copy_web(tmp_path)
    panel = web / "js" / "panels" / "ladder.js"
    source, imported = panel.read_text(), 'import { refresh, superseded } from "../refresh.js";\n'
    assert imported in source   # the planted mistake removes a real import
    panel.write_text(source.replace(imported, "", 1))
    done = lint(web)
    assert done.returncode != 0 and "'refresh' is not defined" in done.stdout


@needs_node
def test_the_joined_script_parses(tmp_path):
    script = tmp_path / "explorer.mjs"
    script.write_text(assemble_script())
    done = subprocess.run([NODE, "--check", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_joiner_keeps_module_scopes_and_order(tmp_path):
    (tmp_path / "a.js").write_text('export const x = 1;\nconst hidden = 2;\nexport function f() { return hidden; }\n')
    (tmp_path / "main.js").write_text(
        'import { x, f as g } from "./a.js";\nconst hidden = 3;\nexport const y = x + g() + hidden;\n')
    script = assemble_script(tmp_path)
    assert script.index("// --- a.js") < script.index("// --- main.js")
    assert "const { x, f: g } = module_a_js;" in script and "return { x, f };" in script
    assert "import" not in script and "export" not in script


@pytest.mark.parametrize("line", ['export let state = 1;', 'export default 1;', 'import x from "./a.js";',
                                  'export { y };'])
def test_the_joiner_refuses_forms_it_does_not_join(tmp_path, line):
    (tmp_path / "a.js").write_text("export const y = 1;\n")
    (tmp_path / "main.js").write_text(f'import {{ y }} from "./a.js";\n{line}\n')
    with pytest.raises(ValueError, match="not a form"):
        assemble_script(tmp_path)


def test_the_joiner_names_a_missing_module_and_a_cycle(tmp_path):
    (tmp_path / "main.js").write_text('import { y } from "./nowhere.js";\n')
    with pytest.raises(ValueError, match="nowhere.js, which does not exist"):
        assemble_script(tmp_path)
    (tmp_path / "main.js").write_text('import { y } from "./a.js";\nexport const x = 1;\n')
    (tmp_path / "a.js").write_text('import { x } from "./main.js";\nexport const y = 1;\n')
    with pytest.raises(ValueError, match="cycle"):
        assemble_script(tmp_path)
