"""What the app does when asked, by area, as mixins of `NanochatApp`: config edits (`config`), runs and
pipelines (`runs`), tokens (`tokens`). They dispatch to the services and push screens; the shell (tabs,
start-up, help, errors, crash dumps) stays in `nanochat_cli.app`."""

from nanochat_cli.app_actions.config import ConfigActions
from nanochat_cli.app_actions.runs import RunActions
from nanochat_cli.app_actions.tokens import TokenActions

__all__ = ["ConfigActions", "RunActions", "TokenActions"]
