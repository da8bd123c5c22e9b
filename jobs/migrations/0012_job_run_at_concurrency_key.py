# Issue 25: the due time of jobs that run later (the scheduler's index on it is 0013_job_due_index), and the key a
# job of a type with a concurrency limit counts against.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0011_job_search_trigram_index"),
    ]

    operations = [
        # Nullable, no default: a catalogue-only change on PostgreSQL, no table rewrite.
        migrations.AddField(
            model_name="job",
            name="run_at",
            field=models.DateTimeField(
                blank=True, help_text="Due time of a job that runs later; published only once it is due.", null=True
            ),
        ),
        migrations.AddField(
            model_name="job",
            name="concurrency_key",
            field=models.CharField(blank=True, editable=False, max_length=255, null=True),
        ),
    ]
