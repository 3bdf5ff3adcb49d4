"""FraudLog keeps its completion's id without a foreign key into actions.

The column (`completion_id`, uuid) and its values stay as they are: only the foreign key
constraint is dropped, and the model's state changes from a relation to a plain UUID.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('actions', '0004_audit_backfill_cursor'),
        ('fraud', '0004_auditevent_login_kinds'),
    ]

    operations = [
        # Drops the constraint; the column and its index stay.
        migrations.AlterField(
            model_name='fraudlog',
            name='completion',
            field=models.ForeignKey(
                blank=True,
                null=True,
                db_constraint=False,
                on_delete=models.DO_NOTHING,
                related_name='fraud_logs',
                to='actions.completion',
            ),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(model_name='fraudlog', name='completion'),
                migrations.AddField(
                    model_name='fraudlog',
                    name='completion_id',
                    field=models.UUIDField(blank=True, db_index=True, null=True),
                ),
            ],
            database_operations=[],
        ),
    ]
