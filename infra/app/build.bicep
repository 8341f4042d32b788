// Build side: the registry (ACR Tasks build app images; the builder image lives here too), the
// Container Apps environment that runs build jobs and previews, and the identity they run as.
param location string
param tags object
param resourceToken string

@description('Log Analytics workspace (monitoring.bicep) that receives the environment\'s logs.')
param logAnalyticsName string

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: logAnalyticsName
}

@description('Build jobs and previews run as this identity: it can only pull from the registry.')
resource buildIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-foundry-build-${resourceToken}'
  location: location
  tags: tags
}

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: 'crfoundry${resourceToken}'
  location: location
  tags: tags
  sku: { name: 'Basic' }
  properties: { adminUserEnabled: false }
}

resource acaEnvironment 'Microsoft.App/managedEnvironments@2024-03-01' = {
  name: 'cae-foundry-${resourceToken}'
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: logs.properties.customerId
        sharedKey: logs.listKeys().primarySharedKey
      }
    }
  }
}

output registryName string = registry.name
output registryLoginServer string = registry.properties.loginServer
output acaEnvironmentId string = acaEnvironment.id
output acaEnvironmentName string = acaEnvironment.name
output buildIdentityId string = buildIdentity.id
output buildIdentityName string = buildIdentity.name
output buildIdentityPrincipalId string = buildIdentity.properties.principalId
