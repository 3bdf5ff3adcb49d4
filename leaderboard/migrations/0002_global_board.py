from django.db import migrations


def create_global(apps, schema_editor):
    """The board `global` (all time, every action type) always exists."""
    Board = apps.get_model("leaderboard", "Board")
    Board.objects.get_or_create(
        slug="global", defaults={"title": "All time", "period": "all_time"}
    )


class Migration(migrations.Migration):
    dependencies = [("leaderboard", "0001_initial")]

    operations = [migrations.RunPython(create_global, migrations.RunPython.noop)]
