FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 UV_PROJECT_ENVIRONMENT=/app/.venv \
    PATH=/app/.venv/bin:$PATH
RUN pip install --no-cache-dir "uv==0.13.9" && apt-get update \
    && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev
COPY . .
RUN DEBUG=1 python manage.py collectstatic --noinput -v0
ENV WHITENOISE_USE_FINDERS=0
EXPOSE 8000
CMD ["gunicorn", "config.wsgi:application", "-c", "deploy/gunicorn_conf.py"]
