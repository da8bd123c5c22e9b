import tests.jobs.jobtypes  # noqa: F401 - registers the test job types in this process too
