from alembic.script import ScriptDirectory

from modelpier.registry.sql.migrate import alembic_config, head_revision


def test_the_cheap_head_agrees_with_alembic() -> None:
    assert head_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()
