"""Sphinx extension of the llmfs book: how solution cells render, and scripts included once.

- Solution cells carry lines meant for tools, not readers: `### BEGIN SOLUTION` / `### END SOLUTION` (the
  student edition's stub markers) and a first `#@title ...` line (Colab's collapsed form). The book drops them
  from the code it shows.
- Each script is included once per page: sphinx-thebe and sphinx-togglebutton register their inline
  configuration twice under Jupyter Book 1.0, and the second `const THEBE_JS_URL` is a console error.
"""

from docutils import nodes
from sphinx.transforms import SphinxTransform

SOLUTION_MARKERS = {"### BEGIN SOLUTION", "### END SOLUTION"}


def tool_lines_removed(source: str) -> str:
    """Return a code cell's source without the solution markers and a leading Colab `#@title` line."""
    lines = source.splitlines()
    if lines and lines[0].startswith("#@title"):
        lines = lines[1:]
    return "\n".join(line for line in lines if line.strip() not in SOLUTION_MARKERS)


def in_code_cell_input(node) -> bool:
    """Whether a node sits in the input area of a notebook code cell (myst-nb's `cell_input` container)."""
    parent = node.parent
    while parent is not None:
        if isinstance(parent, nodes.container) and "cell_input" in parent.get("classes", []):
            return True
        parent = parent.parent
    return False


class HideSolutionToolLines(SphinxTransform):
    """Drop the marker and title lines from the code of notebook cells."""

    default_priority = 700

    def apply(self, **kwargs) -> None:
        for block in list(self.document.findall(nodes.literal_block)):
            if not in_code_cell_input(block):
                continue
            source = block.astext()
            cleaned = tool_lines_removed(source)
            if cleaned != source:
                block.rawsource = cleaned
                block.children = [nodes.Text(cleaned)]


def drop_duplicate_scripts(app, pagename, templatename, context, doctree) -> None:
    """Keep the first of identical script entries of a page: same file, or same inline body and attributes."""
    seen, unique = set(), []
    for script in context.get("script_files", []):
        # An inline script's filename is None or "", depending on who added it.
        attributes = getattr(script, "attributes", {})
        key = (str(getattr(script, "filename", script) or ""), tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    if "script_files" in context:
        context["script_files"][:] = unique


def setup(app):
    app.add_transform(HideSolutionToolLines)
    app.connect("html-page-context", drop_duplicate_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
