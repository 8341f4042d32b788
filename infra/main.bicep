// Foundry build service: everything in one resource group (azd: `azd up`). This file only
// composes the modules in app/, one per concern, in the order a first deploy needs:
// monitoring, storage, identity, build, keyvault -> rbac, llmProxy -> function. The LLM proxy
// exists once its image does: the first provision of a new environment runs without it, and the
// postprovision hook builds the image and provisions again (docs/first-deploy.md).
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; used to name the resource group and derive resource names.')
param environmentName string

@minLength(1)
@description('Azure region for every resource.')
param location string

@description('Object id of the deploying principal; gets data access for troubleshooting.')
param principalId string = ''

@allowed([ 'User', 'Group', 'ServicePrincipal' ])
@description('Type of principalId. azd >= 1.17.1 sets AZURE_PRINCIPAL_TYPE from its login (ServicePrincipal for azd auth login --client-id).')
param principalType string = 'User'

@description('Builder image for ACA Jobs. Empty on a first deploy: the postprovision hook builds runner/Dockerfile into the new registry and sets it.')
param builderImage string = ''

@description('LLM proxy image (proxy/Dockerfile). Empty on a first deploy: the postprovision hook builds it into the new registry, records FOUNDRY_PROXY_IMAGE and provisions again, which deploys the proxy and points the app at it.')
param proxyImage string = ''

@description('Root domain of preview URLs: https://<app>.<org-slug>.<previewDomain>.')
param previewDomain string = 'foundry.local'

@description('org slug (or *) -> managed environment certificate resource id for preview custom domains.')
param previewCertificates object = {}

@secure()
@minLength(1)
@description('Bearer keys for /v1 (FOUNDRY_SERVICE_API_KEYS), written to Key Vault. azd: FOUNDRY_API_KEYS, or prompted.')
param foundryApiKeys string

@secure()
@minLength(1)
@description('Upstream LLM API key the proxy forwards, written to Key Vault. azd: FOUNDRY_ANTHROPIC_API_KEY, or prompted.')
param anthropicApiKey string

var tags = { 'azd-env-name': environmentName, workload: 'foundry-build-service' }
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-foundry-${environmentName}'
  location: location
  tags: tags
}

module monitoring 'app/monitoring.bicep' = {
  name: 'foundry-monitoring'
  scope: rg
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
  }
}

module storage 'app/storage.bicep' = {
  name: 'foundry-storage'
  scope: rg
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
  }
}

module identity 'app/identity.bicep' = {
  name: 'foundry-identity'
  scope: rg
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
  }
}

module build 'app/build.bicep' = {
  name: 'foundry-build'
  scope: rg
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    logAnalyticsName: monitoring.outputs.logAnalyticsName
  }
}

module keyVault 'app/keyvault.bicep' = {
  name: 'foundry-keyvault'
  scope: rg
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    foundryApiKeys: foundryApiKeys
    anthropicApiKey: anthropicApiKey
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'foundry-rbac'
  scope: rg
  params: {
    hostStorageName: storage.outputs.hostStorageName
    jobStorageName: storage.outputs.jobStorageName
    registryName: build.outputs.registryName
    keyVaultName: keyVault.outputs.keyVaultName
    appInsightsName: monitoring.outputs.appInsightsName
    serviceIdentityPrincipalId: identity.outputs.principalId
    buildIdentityPrincipalId: build.outputs.buildIdentityPrincipalId
    buildIdentityName: build.outputs.buildIdentityName
    principalId: principalId
    principalType: principalType
  }
}

// The builders' LLM proxy (docs/llm-proxy.md): a Container App with internal ingress in the
// build environment. Taking the secret name from keyVault's output makes it wait for the secret,
// which its revision reads when it is created.
module llmProxy 'app/proxy.bicep' = if (!empty(proxyImage)) {
  name: 'foundry-llm-proxy'
  scope: rg
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    image: proxyImage
    environmentId: build.outputs.acaEnvironmentId
    registryName: build.outputs.registryName
    keyVaultName: keyVault.outputs.keyVaultName
    anthropicKeySecretName: keyVault.outputs.anthropicKeySecretName
    jobStorageName: storage.outputs.jobStorageName
    appInsightsName: monitoring.outputs.appInsightsName
  }
}

module functionApp 'app/function.bicep' = {
  name: 'foundry-function'
  scope: rg
  // The app's first start resolves its Key Vault references and reaches storage as the service
  // identity, so its role assignments must exist first.
  dependsOn: [ rbac ]
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    serviceIdentityId: identity.outputs.id
    serviceIdentityClientId: identity.outputs.clientId
    hostBlobEndpoint: storage.outputs.hostBlobEndpoint
    hostQueueEndpoint: storage.outputs.hostQueueEndpoint
    hostTableEndpoint: storage.outputs.hostTableEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    jobStorageName: storage.outputs.jobStorageName
    jobContainerName: storage.outputs.jobContainerName
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    keyVaultName: keyVault.outputs.keyVaultName
    apiKeysSecretName: keyVault.outputs.apiKeysSecretName
    registryName: build.outputs.registryName
    acaEnvironmentId: build.outputs.acaEnvironmentId
    buildIdentityId: build.outputs.buildIdentityId
    builderImage: builderImage
    builderProxyUrl: empty(proxyImage) ? '' : llmProxy.outputs.url
    previewDomain: previewDomain
    previewCertificates: previewCertificates
  }
}

// azd writes these to .azure/<env>/.env: `azd env get-values` feeds the postprovision hook and
// the operator CLI (python -m admin reads the FOUNDRY_SERVICE_* and FOUNDRY_ADMIN_* names).
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_NAME string = functionApp.outputs.functionAppName
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.keyVaultName
output AZURE_KEY_VAULT_ENDPOINT string = keyVault.outputs.keyVaultUri
output AZURE_CONTAINER_REGISTRY_NAME string = build.outputs.registryName
output AZURE_CONTAINER_REGISTRY_ENDPOINT string = build.outputs.registryLoginServer
output AZURE_CONTAINER_APPS_ENVIRONMENT_NAME string = build.outputs.acaEnvironmentName
// Empty until the proxy is deployed; the postprovision hook waits for its revision by this name.
output AZURE_LLM_PROXY_NAME string = empty(proxyImage) ? '' : llmProxy.outputs.name
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.appInsightsName
output FOUNDRY_SERVICE_URL string = functionApp.outputs.functionAppUrl
output FOUNDRY_ADMIN_APP_URL string = functionApp.outputs.functionAppUrl
output FOUNDRY_SERVICE_BUILD_BACKEND string = 'azure_container_apps'
output FOUNDRY_SERVICE_TABLE_PREFIX string = 'foundry'
output FOUNDRY_SERVICE_AZURE_SUBSCRIPTION_ID string = subscription().subscriptionId
output FOUNDRY_SERVICE_AZURE_RESOURCE_GROUP string = rg.name
output FOUNDRY_SERVICE_AZURE_LOCATION string = location
output FOUNDRY_SERVICE_AZURE_STORAGE_ACCOUNT string = storage.outputs.jobStorageName
output FOUNDRY_SERVICE_AZURE_STORAGE_CONTAINER string = storage.outputs.jobContainerName
output FOUNDRY_SERVICE_AZURE_ACR_NAME string = build.outputs.registryName
output FOUNDRY_SERVICE_AZURE_ACA_ENVIRONMENT string = build.outputs.acaEnvironmentId
output FOUNDRY_SERVICE_AZURE_IDENTITY_RESOURCE_ID string = build.outputs.buildIdentityId
output FOUNDRY_SERVICE_AZURE_BUILDER_IMAGE string = builderImage
