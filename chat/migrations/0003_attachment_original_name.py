from django.db import migrations, models


def sanitise_names(apps, schema_editor):
    """Keep each stored name as original_name and show only its safe base name from now on."""
    from chat.domain.uploads import safe_filename

    Attachment = apps.get_model("chat", "Attachment")
    for attachment in Attachment.objects.only("pk", "name").iterator():
        safe = safe_filename(attachment.name)
        if safe != attachment.name or not attachment.original_name:
            Attachment.objects.filter(pk=attachment.pk).update(original_name=attachment.name, name=safe)


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0002_lobby"),
    ]

    operations = [
        migrations.AddField(
            model_name="attachment",
            name="original_name",
            field=models.CharField(blank=True, help_text="As the uploader sent it; shown only here.", max_length=255),
        ),
        migrations.RunPython(sanitise_names, migrations.RunPython.noop),
    ]
