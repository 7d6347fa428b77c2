#!/usr/bin/env bash
# Lint and validate the AWS SAM template (template.yaml) with the tools pinned in requirements-ci.txt.
#
#   bash .ci/lint-template.sh
#
# - Installs cfn-lint and aws-sam-cli into a private virtualenv (never into the system Python, where
#   aws-sam-cli's exact pins would fight the preinstalled awscli / moto / aws-sam-translator), and reuses
#   that venv on later runs while requirements-ci.txt is unchanged.
#   Venv location: $CTR_CASES_TOOLS_VENV, default $HOME/.cache/ctr-cases/venv-template.
#   Interpreter used to create it: $PYTHON, default python3 (3.9 or newer).
# - Runs `cfn-lint template.yaml`, cfn-lint on the SAM-translated template (rules cfn-lint skips on
#   Serverless templates, e.g. IAM action names), and `sam validate --lint`. Any error or warning fails.
# - Needs no AWS account: dummy credentials are exported, telemetry is off, and neither check calls AWS.
#   The only network access is PyPI, and only when the venv has to be (re)built.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

requirements="$repo_root/requirements-ci.txt"
template="template.yaml"
venv="${CTR_CASES_TOOLS_VENV:-$HOME/.cache/ctr-cases/venv-template}"
python="${PYTHON:-python3}"

# No credentials, profile or metadata lookups: both checks are offline.
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_SESSION_TOKEN=testing
export AWS_DEFAULT_REGION=us-east-1
export AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_DEFAULT_PROFILE
export SAM_CLI_TELEMETRY=0
export PIP_DISABLE_PIP_VERSION_CHECK=1

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

[[ -f "$requirements" ]] || { echo "lint-template: missing $requirements" >&2; exit 1; }
[[ -f "$template" ]] || { echo "lint-template: missing $repo_root/$template" >&2; exit 1; }

# The stamp records which requirements file built the venv, so a changed pin rebuilds it.
req_hash="$(sha256sum "$requirements" | cut -d' ' -f1)"
stamp="$venv/.ctr-cases-requirements.sha256"

install_start="$(now)"
if [[ -x "$venv/bin/cfn-lint" && -x "$venv/bin/sam" && -f "$stamp" && "$(cat "$stamp")" == "$req_hash" ]]; then
    echo "lint-template: reusing tools venv $venv"
else
    if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' 2>/dev/null; then
        echo "lint-template: need Python 3.9+ as \$PYTHON (got: $("$python" --version 2>&1 || echo none))" >&2
        exit 1
    fi
    echo "lint-template: installing pinned tools from requirements-ci.txt into $venv"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -r "$requirements"
    "$venv/bin/python" -m pip check
    echo "$req_hash" > "$stamp"
fi
install_end="$(now)"
echo "lint-template: tools ready in $(elapsed "$install_start" "$install_end") s" \
     "(cfn-lint $("$venv/bin/cfn-lint" --version | awk '{print $2}'), $("$venv/bin/sam" --version))"

status=0

lint_start="$(now)"
echo "lint-template: \$ cfn-lint $template"
if "$venv/bin/cfn-lint" "$template"; then
    echo "lint-template: cfn-lint: no errors, no warnings"
else
    rc=$?
    # cfn-lint's exit code is a bit mask: 2 = error, 4 = warning, 8 = informational.
    echo "lint-template: cfn-lint failed (exit $rc: 2=error 4=warning 8=info, added together)" >&2
    status=1
fi
lint_end="$(now)"

# cfn-lint skips some rules on templates that use the Serverless transform (among them W3037, which
# checks IAM action names, and W1020). Lint the SAM-translated, plain CloudFormation template as well
# so the IAM policy is checked too. CodeUri is swapped for a dummy S3 URI only for this translation
# (the translator wants a packaged artifact); the explicit role means no managed-policy lookups.
translated_start="$(now)"
tmp_dir="$(mktemp -d)"
trap 'rm -rf "$tmp_dir"' EXIT
echo "lint-template: \$ cfn-lint <template.yaml translated by aws-sam-translator>"
if "$venv/bin/python" - "$template" "$tmp_dir/translated.json" <<'PY'
import json
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    def load(self):
        return {}


src, dst = sys.argv[1], sys.argv[2]
with open(src, encoding="utf-8") as f:
    doc = yaml_parse(f.read())
for resource in doc.get("Resources", {}).values():
    if resource.get("Type") == "AWS::Serverless::Function":
        resource.setdefault("Properties", {})["CodeUri"] = "s3://placeholder-bucket/placeholder.zip"
with open(dst, "w", encoding="utf-8") as f:
    json.dump(transform(doc, {}, NoManagedPolicies()), f, indent=1)
PY
then
    if (cd "$tmp_dir" && "$venv/bin/cfn-lint" translated.json); then
        echo "lint-template: cfn-lint (translated): no errors, no warnings"
    else
        echo "lint-template: cfn-lint on the translated template failed (exit $?)" >&2
        status=1
    fi
else
    echo "lint-template: aws-sam-translator could not translate $template" >&2
    status=1
fi
translated_end="$(now)"

validate_start="$(now)"
echo "lint-template: \$ sam validate --lint --template $template --region us-east-1"
if "$venv/bin/sam" validate --lint --template "$template" --region us-east-1; then
    :
else
    rc=$?
    echo "lint-template: sam validate --lint failed (exit $rc)" >&2
    status=1
fi
validate_end="$(now)"

echo "lint-template: timings: tools $(elapsed "$install_start" "$install_end") s," \
     "cfn-lint $(elapsed "$lint_start" "$lint_end") s," \
     "cfn-lint translated $(elapsed "$translated_start" "$translated_end") s, sam validate $(elapsed "$validate_start" "$validate_end") s"
if [[ $status -eq 0 ]]; then
    echo "lint-template: template.yaml passed cfn-lint and sam validate --lint"
else
    echo "lint-template: template.yaml FAILED; see the messages above" >&2
fi
exit "$status"
