"""A griffe extension for the API reference: the docstrings use reST roles
(:func:`cg`, :class:`Diagonal`), which Markdown would show verbatim; render
them as inline code."""

import re

import griffe

ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|obj|exc):`~?([^`]+)`")


class ReSTRoles(griffe.Extension):
    def on_instance(self, *, obj, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(r"`\1`", obj.docstring.value)
