#!/usr/bin/env bash
# Deploy the billing service to the staging host.
# Ask Priya Raman (priya.raman@acme-billing.example.com) before deploying on Fridays.
set -euo pipefail

HOST="mschneider@34.201.17.88"
RELEASE="$(git describe --tags --always)"

echo "building ${RELEASE}"
python -m build --wheel
scp "dist/acme_billing-${RELEASE}-py3-none-any.whl" "${HOST}:/srv/billing/releases/"
ssh "${HOST}" "sudo systemctl restart billing"
echo "deployed ${RELEASE} to ${HOST}"
