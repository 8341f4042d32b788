// The builders' LLM proxy: a Container App in the ACA environment the build jobs run in, with
// internal ingress only (builders reach it inside the environment; nothing public). It streams
// replies (docs/llm-proxy.md), reads proxy tokens and job rows from the job storage account and
// records usage there, and holds the real Anthropic credential as a Key Vault secret reference.
//
// main.bicep deploys it once its image exists (proxyImage, built by the postprovision hook) and
// passes its url output to the Function App as FOUNDRY_SERVICE_BUILDER_PROXY_URL.
param location string
param tags object
param resourceToken string
@description('Resource id of the ACA managed environment the build jobs run in.')
param environmentId string
param registryName string
param keyVaultName string
@description('Name of the Key Vault secret holding the Anthropic key (keyvault.bicep creates it first).')
param anthropicKeySecretName string = 'anthropic-api-key'
param jobStorageName string
param appInsightsName string
@description('The proxy image, e.g. <acr>.azurecr.io/foundry-llm-proxy:1 (built from proxy/Dockerfile).')
param image string
param tablePrefix string = 'foundry'
param anthropicBaseUrl string = 'https://api.anthropic.com'
param modelPrefixes string = 'claude-'
param maxBodyBytes string = '4194304'
param maxOutputTokens string = '64000'
param maxConcurrentPerToken string = '64'
@description('Per-token limits and the 429 pause live in one replica; keep 1 so they are global.')
param maxReplicas int = 1
@description('0 scales to zero between builds (a cold start on a build\'s first LLM call).')
param minReplicas int = 0

var tableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // Storage Table Data Contributor
var acrPull = '7f951dda-4ed3-4680-a7ca-43fe172d538d' // AcrPull
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6' // Key Vault Secrets User
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb' // Monitoring Metrics Publisher
var port = 8080

resource jobStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = { name: jobStorageName }
resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = { name: registryName }
resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = { name: keyVaultName }
resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = { name: appInsightsName }

@description('The proxy runs as its own identity: job tables, its image, the LLM secret, telemetry. Nothing else.')
resource proxyIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-foundry-proxy-${resourceToken}'
  location: location
  tags: tags
}

resource tableRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(jobStorage.id, proxyIdentity.id, tableDataContributor)
  scope: jobStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', tableDataContributor)
    principalId: proxyIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource pullRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, proxyIdentity.id, acrPull)
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', acrPull)
    principalId: proxyIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource secretRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(keyVault.id, proxyIdentity.id, keyVaultSecretsUser)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: proxyIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource telemetryRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, proxyIdentity.id, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: proxyIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource proxyApp 'Microsoft.App/containerApps@2024-03-01' = {
  name: 'ca-foundry-proxy-${resourceToken}'
  location: location
  tags: union(tags, { 'azd-service-name': 'proxy' })
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${proxyIdentity.id}': {} }
  }
  dependsOn: [ tableRole, pullRole, secretRole ]
  properties: {
    environmentId: environmentId
    configuration: {
      activeRevisionsMode: 'Single'
      // Internal: reachable from the build jobs in this environment only. The 240 s limit of
      // the environment's ingress is an idle timeout; a streaming reply keeps it alive.
      ingress: { external: false, targetPort: port, transport: 'http', allowInsecure: false }
      registries: [ { server: registry.properties.loginServer, identity: proxyIdentity.id } ]
      secrets: [
        {
          name: 'anthropic-api-key'
          keyVaultUrl: '${keyVault.properties.vaultUri}secrets/${anthropicKeySecretName}'
          identity: proxyIdentity.id
        }
      ]
    }
    template: {
      containers: [
        {
          name: 'proxy'
          image: image
          resources: { cpu: json('0.5'), memory: '1Gi' }
          env: [
            { name: 'PORT', value: string(port) }
            { name: 'AZURE_CLIENT_ID', value: proxyIdentity.properties.clientId }
            { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: appInsights.properties.ConnectionString }
            { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${proxyIdentity.properties.clientId};Authorization=AAD' }
            { name: 'FOUNDRY_SERVICE_AZURE_STORAGE_ACCOUNT', value: jobStorage.name }
            { name: 'FOUNDRY_SERVICE_TABLE_PREFIX', value: tablePrefix }
            { name: 'FOUNDRY_SERVICE_ANTHROPIC_API_KEY', secretRef: 'anthropic-api-key' }
            { name: 'FOUNDRY_SERVICE_ANTHROPIC_BASE_URL', value: anthropicBaseUrl }
            { name: 'FOUNDRY_SERVICE_PROXY_MODEL_PREFIXES', value: modelPrefixes }
            { name: 'FOUNDRY_SERVICE_PROXY_MAX_BODY_BYTES', value: maxBodyBytes }
            { name: 'FOUNDRY_SERVICE_PROXY_MAX_OUTPUT_TOKENS', value: maxOutputTokens }
            { name: 'FOUNDRY_SERVICE_PROXY_MAX_CONCURRENT', value: maxConcurrentPerToken }
          ]
          probes: [
            { type: 'Liveness', httpGet: { path: '/healthz', port: port }, periodSeconds: 30 }
            { type: 'Readiness', httpGet: { path: '/healthz', port: port }, periodSeconds: 10 }
          ]
        }
      ]
      scale: {
        minReplicas: minReplicas
        maxReplicas: maxReplicas
        rules: [ { name: 'http', http: { metadata: { concurrentRequests: '100' } } } ]
      }
    }
  }
}

@description('What builders get as ANTHROPIC_BASE_URL (FOUNDRY_SERVICE_BUILDER_PROXY_URL).')
output url string = 'https://${proxyApp.properties.configuration.ingress.fqdn}'
output name string = proxyApp.name
output identityPrincipalId string = proxyIdentity.properties.principalId
