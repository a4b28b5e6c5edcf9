"""Runtime settings. Real deployments read these from the environment."""

import os

DATABASE_URL = os.environ.get(
    "DATABASE_URL", "postgresql://billing_app:S3cr3t-Passw0rd!@10.20.30.40:5432/billing"
)
# TODO(jane.doe): move these to the vault before the audit
AWS_ACCESS_KEY_ID = "AKIA4QWERTYUIOP7ZX2N"
AWS_SECRET_ACCESS_KEY = "k7Gf2pQ9rT4vX1zB8nM3cL6hJ0wY5sD2aE9uI4oR"
STRIPE_API_KEY = "sk_live_51HqT2cKZ8vRt7YpLm3Nq9WxA"
SMTP_HOST = "mail.acme-billing.example.com"
REPORT_RECIPIENTS = ["finance@acme-billing.example.com", "cfo.office@acme-billing.example.com"]
CACHE_DIR = "/home/mschneider/.cache/acme-billing"
API_VERSION = "2.4.1.0"
