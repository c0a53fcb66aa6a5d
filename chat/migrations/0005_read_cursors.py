"""Read cursors on memberships, and the DM flag on rooms (protocol section 11).

Existing members start with everything read: a cursor of 0 would make a whole history unread.
"""

from django.db import migrations, models


def cursors_at_end(apps, schema_editor):
    Membership = apps.get_model("chat", "Membership")
    for membership in Membership.objects.select_related("room").iterator():
        if membership.last_read != membership.room.last_seq:
            Membership.objects.filter(pk=membership.pk).update(last_read=membership.room.last_seq)


class Migration(migrations.Migration):
    dependencies = [("chat", "0004_message_versions")]

    operations = [
        migrations.AddField(
            model_name="room",
            name="dm",
            field=models.BooleanField(db_default=False, default=False, editable=False),
        ),
        migrations.AddField(
            model_name="membership",
            name="last_read",
            field=models.PositiveBigIntegerField(db_default=0, default=0),
        ),
        migrations.RunPython(cursors_at_end, migrations.RunPython.noop),
    ]
