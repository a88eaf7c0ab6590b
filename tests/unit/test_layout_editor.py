"""The layout editor without a UI: what it selects, what it asks, what each answer does to the layout, and the edits
it refuses with a reason."""

from __future__ import annotations

import pytest

from nanochat_cli.errors import AppError
from nanochat_cli.services.layout_editor import Ask, Done, EditRefused, LayoutEditor, check_rate
from nanochat_cli.services.panels import LayoutStore, load_layout


@pytest.fixture
def editor(tmp_path) -> LayoutEditor:
    ed = LayoutEditor(LayoutStore(tmp_path / "layouts"), show_path=lambda p: f"<{p.name}>")
    assert ed.choose(small=False) is None
    ed.view = "overview"
    return ed


def overview(ed: LayoutEditor) -> list[str]:
    return [p.panel for p in ed.layout.screen("overview").panels]


def test_the_terminal_size_picks_the_first_layout_and_a_broken_preset_falls_back(tmp_path):
    store = LayoutStore(tmp_path / "layouts")
    small = LayoutEditor(store)
    assert small.choose(small=True) is None and small.layout.name == "compact"
    assert small.choose(small=False) is None and small.layout.name == "compact"  # one that is open stays
    (tmp_path / "layouts").mkdir()
    (tmp_path / "layouts" / "compact.yaml").write_text("screens:\n- id: main\n  title: M\n  panels:\n"
                                                       "  - panel: no_such_panel\n")
    broken = LayoutEditor(store)
    problem = broken.choose(small=True)
    assert broken.layout.name == "default" and "no_such_panel" in problem and "shipped default" in problem
    (tmp_path / "layouts" / "default.yaml").write_text((tmp_path / "layouts" / "compact.yaml").read_text())
    with pytest.raises(AppError, match="no_such_panel"):
        LayoutEditor(store).choose(small=False)


def test_selection_starts_on_the_first_panel_and_wraps(editor):
    panels = overview(editor)
    assert editor.panels() == panels and editor.selected_panel() == panels[0]
    assert editor.select_panel(-1) == Done() and editor.selected_panel() == panels[-1]
    editor.select_panel(1)
    assert editor.selected_panel() == panels[0]
    editor.select("val_bpb")
    editor.view = "details"  # each view keeps its own selection
    assert editor.selected_panel() == editor.panels()[0]
    editor.view = "overview"
    assert editor.selected_panel() == "val_bpb" and editor.label == "default"


def test_edits_need_a_dashboard_view_and_a_panel(editor):
    editor.view = None  # the Runs tab
    for edit in (editor.add_panel, editor.remove_panel, editor.refresh_rate):
        with pytest.raises(EditRefused, match=r"dashboard tab first \(v\)"):
            edit()
    editor.view = "overview"
    with pytest.raises(EditRefused, match="already first"):
        editor.move_panel(-1)
    editor.layout = editor.layout.add_screen("empty", "Empty")
    editor.view = "empty"
    with pytest.raises(EditRefused, match=r"no panels: add one \(a\)"):
        editor.remove_panel()
    assert editor.select_panel(1) == Done() and editor.selected_panel() is None


def test_add_asks_for_a_panel_not_on_the_tab_and_places_it_after_the_selected_one(editor):
    before = overview(editor)
    ask = editor.add_panel()
    assert isinstance(ask, Ask) and ask.choices
    offered = [cid for cid, _ in ask.choices]
    assert "system" in offered and not set(before) & set(offered)
    done = ask.then("system")
    assert done == Done(rebuild=True, select="system", change="add system")
    assert overview(editor) == before[:1] + ["system"] + before[1:] and editor.edited
    assert editor.label == "default (edited)"


def test_move_remove_and_refresh_rate_act_on_the_selected_panel(editor):
    editor.select("loss")
    at = overview(editor).index("loss")
    assert editor.move_panel(1) == Done(rebuild=True, select="loss", change="move loss")
    assert overview(editor).index("loss") == at + 1
    ask = editor.refresh_rate()
    assert ask.value == "5" and ask.check("abc").startswith("'abc' is not a number")
    assert "at most 30" in ask.check("99") and ask.check("0.5") is None
    ask.then("0.5")
    assert editor.layout.screen("overview").placement("loss").refresh_hz == 0.5
    assert editor.remove_panel() == Done(rebuild=True, change="remove loss")
    assert "loss" not in overview(editor)


def test_save_checks_the_name_writes_a_preset_and_open_switches(editor, tmp_path):
    editor.remove_panel()
    ask = editor.save_layout()
    assert ask.value == "default" and ask.check("") == "enter a name" and "invalid name" in ask.check("Bad Name")
    done = ask.then("mine")
    saved = tmp_path / "layouts" / "mine.yaml"
    assert done.note == "Saved layout mine: <mine.yaml>" and saved.exists()
    assert load_layout(saved).screen("overview").panels == editor.layout.screen("overview").panels
    assert editor.layout.name == "mine" and not editor.edited
    assert "takes the place of the shipped one" in editor.save_layout().then("compact").note

    ask = editor.open_layout()
    assert {"default", "compact", "mine"} <= {cid for cid, _ in ask.choices}
    assert ask.then("default") == Done(rebuild=True, change="opened")
    assert editor.layout.name == "default" and editor.view is None  # the rebuilt tabs say which view shows


def test_check_rate_rejects_what_is_not_a_rate():
    assert check_rate("nan").startswith("nan is out of range") and check_rate("0").startswith("0 is out of range")
    assert check_rate("2") is None and check_rate("30") is None


def test_a_post_training_run_gets_its_stage_layout_unless_one_was_picked(tmp_path):
    from nanochat_cli.services.layout_editor import LayoutEditor
    from nanochat_cli.services.panels import LayoutStore

    editor = LayoutEditor(LayoutStore(tmp_path / "layouts"))
    editor.choose(small=False)
    assert editor.layout.name == "default"
    editor.choose(small=False, stage="rl")
    assert editor.layout.name == "rl"
    editor.choose(small=False, stage="rl")
    assert editor.layout.name == "rl"
    editor.choose(small=True, stage="base")  # back to a pretraining run: the terminal's layout again
    assert editor.layout.name == "compact"
    editor.choose(small=False, stage="base")
    assert editor.layout.name == "compact"  # a base layout stays (the user may be using it)
    editor.edited = True
    editor.choose(small=False, stage="sft")
    assert editor.layout.name == "compact"  # edits are never thrown away
