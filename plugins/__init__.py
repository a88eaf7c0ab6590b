"""In-repo plugins: each subpackage here is one plugin with a `register(registry)` function.

The app loads them at start-up with `nanochat_cli.services.plugins.load_plugins`, next to installed
plugins from the `nanochat_cli.plugins` entry-point group. See docs/plugins.md.
"""
