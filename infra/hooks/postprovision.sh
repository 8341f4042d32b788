#!/bin/sh
# azd postprovision hook (azure.yaml): make the new deployment able to build before the app serves.
#
#  1. Build the builder image (runner/Dockerfile, build context = repository root) into this
#     deployment's registry with ACR Tasks, tagged by the content of what goes into it, unless a
#     build of exactly that content is already there. An operator-supplied FOUNDRY_BUILDER_IMAGE
#     from another registry is used as is; the quickstart image is refused (it writes no
#     stream.jsonl, so every build would end build_crashed).
#  2. Point the app setting FOUNDRY_SERVICE_AZURE_BUILDER_IMAGE at it, and record it in the azd
#     environment (FOUNDRY_BUILDER_IMAGE), so the next `azd provision` writes the same value.
#  3. Wait until both Key Vault references resolve (role assignments take minutes to propagate),
#     restarting the app while they do not, and fail loudly if they never do.
#
# It reads the azd environment (Bicep outputs included), which azd exports to hooks. It uses the
# Azure CLI, which must be logged in to the same tenant as azd (`az login`).
set -eu

say() { printf 'postprovision: %s\n' "$*"; }
die() { printf 'postprovision: %s\n' "$*" >&2; exit 1; }

: "${AZURE_SUBSCRIPTION_ID:?not set: run this through azd (azd provision / azd up)}"
: "${AZURE_RESOURCE_GROUP:?not set: provisioning has not finished}"
: "${AZURE_FUNCTION_NAME:?not set: provisioning has not finished}"
: "${AZURE_CONTAINER_REGISTRY_NAME:?not set: provisioning has not finished}"
: "${AZURE_CONTAINER_REGISTRY_ENDPOINT:?not set: provisioning has not finished}"

root=$(CDPATH='' cd -- "$(dirname -- "$0")/../.." && pwd)
dockerfile=runner/Dockerfile
repository=${FOUNDRY_BUILDER_REPOSITORY:-foundry-builder}
current=${FOUNDRY_BUILDER_IMAGE:-}
poll_secs=${FOUNDRY_HOOK_POLL_SECS:-15}      # between Key Vault reference checks
checks=${FOUNDRY_HOOK_CHECKS:-60}              # 60 x 15 s: role assignments can take 10 minutes
restart_every=${FOUNDRY_HOOK_RESTART_EVERY:-8} # restart the app after every 8 failed checks
sub="--subscription $AZURE_SUBSCRIPTION_ID"

case $current in
  *quickstart-jobs*)
    die "FOUNDRY_BUILDER_IMAGE=$current is the ACA quickstart image: it writes no stream.jsonl, so every build would end build_crashed. Unset it (azd env set FOUNDRY_BUILDER_IMAGE '') to build $dockerfile."
    ;;
esac

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum; else shasum -a 256; fi
}

# Files that go into the image: the Dockerfile and every COPY/ADD source it names (not --from
# stages). The tag is a hash of their paths and contents, so an unchanged builder is never rebuilt
# and a changed one always gets a new, immutable tag.
image_sources() {
  printf '%s\n' "$dockerfile"
  awk '
    { line = $0 }
    cont != "" { line = cont " " line; cont = "" }
    /\\[ \t]*$/ { sub(/\\[ \t]*$/, "", line); cont = line; next }
    toupper(line) ~ /^[ \t]*(COPY|ADD)[ \t]/ {
      gsub(/[\[\],"]/, " ", line)
      n = split(line, word, /[ \t]+/)
      first = 0; last = 0
      for (i = 1; i <= n; i++) {
        if (word[i] == "" || toupper(word[i]) == "COPY" || toupper(word[i]) == "ADD") continue
        if (word[i] ~ /^--from=/) { first = -1; break }
        if (word[i] ~ /^--/) continue
        if (first == 0) first = i
        last = i
      }
      if (first > 0) for (i = first; i < last; i++) if (word[i] != "") print word[i]
    }
  ' "$dockerfile"
}

content_tag() {
  files=$(mktemp)
  # Unquoted on purpose: sources are globs relative to the context, expanded here as the build
  # would expand them (paths with spaces are not supported).
  for path in $(image_sources); do
    [ -e "$path" ] || die "$dockerfile copies $path, which does not exist"
    find "$path" \( -name .git -o -name .venv -o -name node_modules -o -name .azure \
      -o -name __pycache__ \) -prune -o -type f ! -name '*.pyc' -print >> "$files"
  done
  LC_ALL=C sort -u "$files" | while IFS= read -r file; do
    printf '%s\n' "$file"
    sha256 < "$file"
  done | sha256 | cut -c1-12
  rm -f "$files"
}

cd "$root"
if [ -n "$current" ] && [ "${current%%/*}" != "$AZURE_CONTAINER_REGISTRY_ENDPOINT" ]; then
  # Brought by the operator from another registry: the build identity must be able to pull it.
  image=$current
  say "using the operator's builder image $image (not building $dockerfile)"
else
  [ -f "$dockerfile" ] || die "$dockerfile is missing in $root: cannot build the builder image"
  tag=$(content_tag)
  [ -n "$tag" ] || die "could not hash the builder image sources"
  image="$AZURE_CONTAINER_REGISTRY_ENDPOINT/$repository:$tag"
  # shellcheck disable=SC2086 # $sub is two words on purpose
  if az acr repository show $sub --name "$AZURE_CONTAINER_REGISTRY_NAME" \
      --image "$repository:$tag" --output none >/dev/null 2>&1; then
    say "builder image $image is already in the registry"
  else
    say "building $image from $dockerfile with ACR Tasks (a few minutes)"
    # shellcheck disable=SC2086
    az acr build $sub --registry "$AZURE_CONTAINER_REGISTRY_NAME" \
      --image "$repository:$tag" --file "$dockerfile" .
  fi
fi

if [ "$image" != "$current" ]; then
  # Not in the provisioned settings yet (first deploy, or the builder changed): set it now, and in
  # the azd environment so the next provision keeps it.
  say "setting FOUNDRY_SERVICE_AZURE_BUILDER_IMAGE=$image"
  # shellcheck disable=SC2086
  az functionapp config appsettings set $sub --name "$AZURE_FUNCTION_NAME" \
    --resource-group "$AZURE_RESOURCE_GROUP" \
    --settings "FOUNDRY_SERVICE_AZURE_BUILDER_IMAGE=$image" --output none
  azd env set FOUNDRY_BUILDER_IMAGE "$image"
  azd env set FOUNDRY_SERVICE_AZURE_BUILDER_IMAGE "$image"
fi

site="/subscriptions/$AZURE_SUBSCRIPTION_ID/resourceGroups/$AZURE_RESOURCE_GROUP/providers/Microsoft.Web/sites/$AZURE_FUNCTION_NAME"
reference_status() {
  az rest --method get \
    --url "$site/config/configreferences/appsettings/$1?api-version=2023-12-01" \
    --query properties.status --output tsv 2>/dev/null || echo unknown
}

# An unresolved reference leaves the literal @Microsoft.KeyVault(...) string in the setting, and
# the platform fetches references again on a restart or config change (otherwise about daily):
# restart while they are unresolved, typically because the role assignment is still propagating.
round=0
while :; do
  pending=""
  for setting in FOUNDRY_SERVICE_API_KEYS FOUNDRY_SERVICE_ANTHROPIC_API_KEY; do
    status=$(reference_status "$setting")
    [ "$status" = Resolved ] || pending="$pending $setting=$status"
  done
  if [ -z "$pending" ]; then
    say "Key Vault references resolved"
    break
  fi
  round=$((round + 1))
  if [ "$round" -ge "$checks" ]; then
    die "Key Vault references still unresolved after $round checks:$pending (see docs/first-deploy.md)"
  fi
  if [ $((round % restart_every)) -eq 0 ]; then
    say "restarting the app to re-resolve:$pending"
    # shellcheck disable=SC2086
    az functionapp restart $sub --name "$AZURE_FUNCTION_NAME" \
      --resource-group "$AZURE_RESOURCE_GROUP" --output none
  else
    say "waiting for Key Vault references:$pending"
  fi
  sleep "$poll_secs"
done
