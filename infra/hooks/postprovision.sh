#!/bin/sh
# azd postprovision hook (azure.yaml): make the new deployment able to build before the app serves.
#
#  1. Build the two images this deployment runs into its registry with ACR Tasks, each tagged by
#     the content of what goes into it, unless a build of exactly that content is already there:
#     - the builder (runner/Dockerfile, build context = the repository root, which the root
#       .dockerignore limits to what the builder copies). An operator-supplied
#       FOUNDRY_BUILDER_IMAGE from another registry is used as is; the quickstart image is
#       refused (it writes no stream.jsonl, so every build would end build_crashed);
#     - the LLM proxy (proxy/Dockerfile). `az acr build` reads only its context's own
#       .dockerignore, so its context is a staging directory holding exactly the files the
#       Dockerfile copies (requirements.txt, shared/, proxy/).
#  2. Builder: point the app setting FOUNDRY_SERVICE_AZURE_BUILDER_IMAGE at it, and record it in
#     the azd environment (FOUNDRY_BUILDER_IMAGE), so the next `azd provision` writes the same value.
#  3. Proxy: record it in the azd environment (FOUNDRY_PROXY_IMAGE, main.bicep's proxyImage) and,
#     when it differs from what this provision deployed, run `azd provision` once more (the
#     second pass). main.bicep deploys the proxy module only when proxyImage is set, and points
#     the app's FOUNDRY_SERVICE_BUILDER_PROXY_URL at it, so the first `azd up` ends fully wired
#     and every later provision writes the same thing. The second pass runs this hook again,
#     which builds nothing, finds the proxy deployed and does step 4; it never provisions a third
#     time (FOUNDRY_HOOK_SECOND_PASS).
#  4. Wait until the app's Key Vault reference resolves (role assignments take minutes to
#     propagate), restarting the app while it does not, and until the proxy's latest revision is
#     ready (it reads the Anthropic key from Key Vault itself); fail loudly if either never does.
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
builder_dockerfile=runner/Dockerfile
builder_repository=${FOUNDRY_BUILDER_REPOSITORY:-foundry-builder}
builder_current=${FOUNDRY_BUILDER_IMAGE:-}
proxy_dockerfile=proxy/Dockerfile
proxy_repository=foundry-llm-proxy
proxy_current=${FOUNDRY_PROXY_IMAGE:-}
proxy_app=${AZURE_LLM_PROXY_NAME:-}           # main.bicep output; empty while no proxy is deployed
second_pass=${FOUNDRY_HOOK_SECOND_PASS:-}     # set by this hook for the provision it runs
poll_secs=${FOUNDRY_HOOK_POLL_SECS:-15}      # between checks
checks=${FOUNDRY_HOOK_CHECKS:-60}              # 60 x 15 s: role assignments can take 10 minutes
restart_every=${FOUNDRY_HOOK_RESTART_EVERY:-8} # restart the app after every 8 failed checks
sub="--subscription $AZURE_SUBSCRIPTION_ID"

case $builder_current in
  *quickstart-jobs*)
    die "FOUNDRY_BUILDER_IMAGE=$builder_current is the ACA quickstart image: it writes no stream.jsonl, so every build would end build_crashed. Unset it (azd env set FOUNDRY_BUILDER_IMAGE '') to build $builder_dockerfile."
    ;;
esac
if [ -n "$proxy_current" ] && [ "${proxy_current%%/*}" != "$AZURE_CONTAINER_REGISTRY_ENDPOINT" ]; then
  # proxy.bicep gives the proxy's identity pull rights on this registry only.
  die "FOUNDRY_PROXY_IMAGE=$proxy_current is not in this deployment's registry ($AZURE_CONTAINER_REGISTRY_ENDPOINT), the only one the proxy can pull from. Unset it (azd env set FOUNDRY_PROXY_IMAGE '') to build $proxy_dockerfile."
fi

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum; else shasum -a 256; fi
}

# Sources a Dockerfile copies: itself and every COPY/ADD source it names (not --from stages).
image_sources() {
  printf '%s\n' "$1"
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
  ' "$1"
}

# The files that go into the image built from Dockerfile $1, one path a line, sorted: what the
# tag hashes, and what a staged build context holds.
image_files() {
  listed=$(mktemp)
  # Unquoted on purpose: sources are globs relative to the context, expanded here as the build
  # would expand them (paths with spaces are not supported).
  for path in $(image_sources "$1"); do
    [ -e "$path" ] || { rm -f "$listed"; die "$1 copies $path, which does not exist"; }
    find "$path" \( -name .git -o -name .venv -o -name node_modules -o -name .azure \
      -o -name __pycache__ \) -prune -o -type f ! -name '*.pyc' -print >> "$listed"
  done
  LC_ALL=C sort -u "$listed"
  rm -f "$listed"
}

# A hash of the paths and contents of the files in $1 (a list from image_files), so an unchanged
# image is never rebuilt and a changed one always gets a new, immutable tag.
content_tag() {
  while IFS= read -r file; do
    printf '%s\n' "$file"
    sha256 < "$file"
  done < "$1" | sha256 | cut -c1-12
}

# resolve_image DOCKERFILE REPOSITORY CURRENT CONTEXT: sets $image to the image to deploy, built
# into this registry unless already there. CONTEXT "root" builds with the repository root (its
# .dockerignore is the allowlist); "staged" builds a directory holding just the image's files.
resolve_image() {
  dockerfile=$1 repository=$2 current=$3 context=$4
  if [ -n "$current" ] && [ "${current%%/*}" != "$AZURE_CONTAINER_REGISTRY_ENDPOINT" ]; then
    # Brought by the operator from another registry: the build identity must be able to pull it.
    image=$current
    say "using the operator's image $image (not building $dockerfile)"
    return 0
  fi
  [ -f "$dockerfile" ] || die "$dockerfile is missing in $root: cannot build $repository"
  files=$(mktemp)
  image_files "$dockerfile" > "$files"
  tag=$(content_tag "$files")
  [ -n "$tag" ] || { rm -f "$files"; die "could not hash the sources of $dockerfile"; }
  image="$AZURE_CONTAINER_REGISTRY_ENDPOINT/$repository:$tag"
  # shellcheck disable=SC2086 # $sub is two words on purpose
  if az acr repository show $sub --name "$AZURE_CONTAINER_REGISTRY_NAME" \
      --image "$repository:$tag" --output none >/dev/null 2>&1; then
    say "image $image is already in the registry"
  else
    source_dir=.
    if [ "$context" = staged ]; then
      source_dir=$(mktemp -d)
      while IFS= read -r file; do
        mkdir -p "$source_dir/$(dirname -- "$file")"
        cp -p "$file" "$source_dir/$file"
      done < "$files"
    fi
    say "building $image from $dockerfile with ACR Tasks (a few minutes)"
    # shellcheck disable=SC2086
    az acr build $sub --registry "$AZURE_CONTAINER_REGISTRY_NAME" \
      --image "$repository:$tag" --file "$dockerfile" "$source_dir" \
      || { [ "$source_dir" = . ] || rm -rf "$source_dir"; rm -f "$files"; die "az acr build of $dockerfile failed"; }
    [ "$source_dir" = . ] || rm -rf "$source_dir"
  fi
  rm -f "$files"
}

# Every source of every image this run may build exists, before anything touches Azure.
check_sources() {
  if [ -n "$2" ] && [ "${2%%/*}" != "$AZURE_CONTAINER_REGISTRY_ENDPOINT" ]; then return 0; fi
  [ -f "$1" ] || die "$1 is missing in $root: cannot build its image"
  image_files "$1" > /dev/null
}

cd "$root"
check_sources "$builder_dockerfile" "$builder_current"
check_sources "$proxy_dockerfile" "$proxy_current"
resolve_image "$builder_dockerfile" "$builder_repository" "$builder_current" root
builder_image=$image
resolve_image "$proxy_dockerfile" "$proxy_repository" "$proxy_current" staged
proxy_image=$image

if [ "$builder_image" != "$builder_current" ]; then
  # Not in the provisioned settings yet (first deploy, or the builder changed): set it now, and in
  # the azd environment so the next provision keeps it.
  say "setting FOUNDRY_SERVICE_AZURE_BUILDER_IMAGE=$builder_image"
  # shellcheck disable=SC2086
  az functionapp config appsettings set $sub --name "$AZURE_FUNCTION_NAME" \
    --resource-group "$AZURE_RESOURCE_GROUP" \
    --settings "FOUNDRY_SERVICE_AZURE_BUILDER_IMAGE=$builder_image" --output none
  azd env set FOUNDRY_BUILDER_IMAGE "$builder_image"
  azd env set FOUNDRY_SERVICE_AZURE_BUILDER_IMAGE "$builder_image"
fi

if [ "$proxy_image" != "$proxy_current" ]; then
  if [ -n "$second_pass" ]; then
    # The provision this hook ran did not deploy the image it recorded: stop, never loop.
    die "the second provision deployed FOUNDRY_PROXY_IMAGE=${proxy_current:-(none)}, not $proxy_image (see docs/first-deploy.md)"
  fi
  # The proxy is a module of main.bicep (with its identity, roles and the app's URL setting):
  # deploying it through a provision keeps main.bicep the one description of the wiring.
  azd env set FOUNDRY_PROXY_IMAGE "$proxy_image"
  say "second pass: azd provision deploys the LLM proxy $proxy_image and points the app at it"
  FOUNDRY_HOOK_SECOND_PASS=1 FOUNDRY_PROXY_IMAGE=$proxy_image azd provision --no-prompt \
    || die "the second provision (LLM proxy) failed: fix the cause, then azd provision"
  say "second pass done: the LLM proxy is deployed and the checks passed"
  exit 0
fi
[ -n "$proxy_app" ] \
  || die "FOUNDRY_PROXY_IMAGE=$proxy_image is recorded but no proxy is deployed (AZURE_LLM_PROXY_NAME is empty): run azd provision"

site="/subscriptions/$AZURE_SUBSCRIPTION_ID/resourceGroups/$AZURE_RESOURCE_GROUP/providers/Microsoft.Web/sites/$AZURE_FUNCTION_NAME"
reference_status() {
  az rest --method get \
    --url "$site/config/configreferences/appsettings/$1?api-version=2023-12-01" \
    --query properties.status --output tsv 2>/dev/null || echo unknown
}

# An unresolved reference leaves the literal @Microsoft.KeyVault(...) string in the setting, and
# the platform fetches references again on a restart or config change (otherwise about daily):
# restart while they are unresolved, typically because the role assignment is still propagating.
# The Anthropic key is no setting of the app: the proxy holds it (checked below).
references="FOUNDRY_SERVICE_API_KEYS"   # the app's Key Vault references (function.bicep)
round=0
while :; do
  pending=""
  for setting in $references; do
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

proxy_revision() {
  # shellcheck disable=SC2086
  az containerapp show $sub --name "$proxy_app" --resource-group "$AZURE_RESOURCE_GROUP" \
    --query "properties.$1" --output tsv 2>/dev/null || true
}

# Container Apps resolves the proxy's Key Vault secret when it creates a revision; the revision
# becomes ready only with the secret read and the image pulled (both by the proxy's identity).
round=0
while :; do
  latest=$(proxy_revision latestRevisionName)
  ready=$(proxy_revision latestReadyRevisionName)
  if [ -n "$latest" ] && [ "$latest" = "$ready" ]; then
    say "LLM proxy revision $latest is ready"
    break
  fi
  round=$((round + 1))
  if [ "$round" -ge "$checks" ]; then
    die "LLM proxy revision ${latest:-(none)} still not ready after $round checks (ready: ${ready:-none}); see docs/first-deploy.md"
  fi
  say "waiting for the LLM proxy revision ${latest:-(none)} (ready: ${ready:-none})"
  sleep "$poll_secs"
done
