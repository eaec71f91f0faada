"""The status pages: ``GET /`` and ``GET /ui/models/{model}``, HTML rendered on the server.

:mod:`~exporter.ui.pages` builds what they show from snapshots, :mod:`~exporter.ui.lights`
colours it by the shipped alerts' rules, :mod:`~exporter.ui.charts` draws the SVG charts and
:mod:`~exporter.ui.render` fills the Jinja2 templates (``templates/``, autoescaped). No
JavaScript and no remote asset: the pages work offline and in any browser.
"""
