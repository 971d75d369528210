"""Server-rendered HTML (Jinja2 + htmx), zh-CN first."""
