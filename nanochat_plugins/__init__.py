"""In-repo plugins: each subpackage here is one plugin with a `register(registry)` function.

Installed as `nanochat_plugins` (never a bare top-level `plugins` that would clash with other projects).
The app and the CLI load them at start-up with `nanochat_cli.services.plugins.load_plugins`, next to the
user plugin folder and installed plugins from the `nanochat_cli.plugins` entry-point group. Plugins import
only `nanochat_cli.plugin_api` (an import-linter contract checks it). See docs/plugins.md.
"""
