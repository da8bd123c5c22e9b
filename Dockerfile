# One image for every process in compose.yaml (web, workers, beat, Flower, migrate).
FROM python:3.11-slim

# PYTHONPATH: the code in /app runs, not the copy `pip install .` leaves in
# site-packages, because settings find templates/ and var/ next to it.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app

WORKDIR /app
RUN useradd --create-home --uid 10001 app

# Only what the platform runs; tests, benchmarks and local state (var/, .env) stay out.
COPY pyproject.toml README.md manage.py ./
# Hashed pins (devtools/lock.py): the image gets exactly the versions CI tested, or the build fails.
COPY requirements/app.txt ./requirements/app.txt
COPY config ./config
COPY jobs ./jobs
COPY exports ./exports
COPY sync ./sync
COPY emails ./emails
COPY templates ./templates
# docs/operations.md: the runbook the overview's alerts link to (JOBS_RUNBOOK_URL unset).
COPY docs/operations.md ./docs/operations.md

# Production settings refuse the development SECRET_KEY, so collectstatic gets a
# build-only one; the real key comes from the environment at run time.
RUN pip install --require-hashes -r requirements/app.txt \
    && pip install --no-deps --no-build-isolation . \
    && rm -rf build ./*.egg-info \
    && mkdir -p var/media var/static var/flower \
    && DJANGO_SETTINGS_MODULE=config.settings.production SECRET_KEY=build-only-collectstatic-key \
       python manage.py collectstatic --noinput \
    && chown -R app:app var

USER app
EXPOSE 8000
# config/gunicorn.py as compose uses it: X-Forwarded-Proto believed only with TRUST_PROXY_HEADERS, metrics across workers.
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--config", "python:config.gunicorn"]
