FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY config ./config
COPY jobs ./jobs
COPY exports ./exports
COPY sync ./sync
COPY emails ./emails
COPY templates ./templates
COPY manage.py ./
RUN pip install . \
    && useradd --create-home --uid 10001 app \
    && mkdir -p /app/var/media /app/var/static \
    && DJANGO_SETTINGS_MODULE=config.settings.production SECRET_KEY=build-only-collectstatic \
       python manage.py collectstatic --noinput \
    && chown -R app:app /app/var
USER app

EXPOSE 8000
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000"]
