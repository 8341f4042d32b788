// Least-privilege role assignments (design 000 section 5). Assignment names are guid(scope,
// principal, role), so re-deploying is idempotent.
param hostStorageName string
param jobStorageName string
param registryName string
param keyVaultName string
param appInsightsName string
param serviceIdentityPrincipalId string
param buildIdentityPrincipalId string
param buildIdentityName string

@description('Object id of the deploying principal; empty: no troubleshooting access is granted.')
param principalId string = ''

// ARM refuses an assignment whose principalType differs from the principal's real type
// (UnmatchedPrincipalType): a service-principal deploy passes ServicePrincipal (main.bicep).
@allowed([ 'User', 'Group', 'ServicePrincipal' ])
@description('Type of principalId: User for an interactive deploy, ServicePrincipal for CI.')
param principalType string = 'User'

var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // Storage Blob Data Owner
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe' // Storage Blob Data Contributor
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88' // Storage Queue Data Contributor
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // Storage Table Data Contributor
var storageBlobDelegator = 'db58b8e5-c6ad-4a2a-8342-4190687cbf4a' // Storage Blob Delegator (user-delegation SAS)
var acrPull = '7f951dda-4ed3-4680-a7ca-43fe172d538d' // AcrPull
var acrPush = '8311e382-0749-4cb8-b61a-304f252e45ec' // AcrPush
var acrDelete = 'c2f4ef07-c644-48eb-af81-4b1b4947fb11' // AcrDelete (preview repository teardown)
var acrTasksContributor = 'fb382eab-e894-4461-af04-94435c366c3f' // Container Registry Tasks Contributor (scheduleRun)
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6' // Key Vault Secrets User
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb' // Monitoring Metrics Publisher

resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = { name: hostStorageName }
resource jobStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = { name: jobStorageName }
resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = { name: registryName }
resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = { name: keyVaultName }
resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = { name: appInsightsName }
resource buildIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' existing = {
  name: buildIdentityName
}

// Durable Functions' task hub lives in the host account: blobs, queues and tables.
resource hostRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in [
  storageBlobDataOwner, storageQueueDataContributor, storageTableDataContributor
]: {
  name: guid(hostStorage.id, serviceIdentityPrincipalId, role)
  scope: hostStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
    principalId: serviceIdentityPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

// Job state (tables), job objects (blobs) and the right to sign user-delegation SAS grants.
resource jobRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in [
  storageBlobDataContributor, storageTableDataContributor, storageBlobDelegator
]: {
  name: guid(jobStorage.id, serviceIdentityPrincipalId, role)
  scope: jobStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
    principalId: serviceIdentityPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

// Build app images (ACR Tasks), push them, delete their repositories on teardown.
resource registryRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in [
  acrTasksContributor, acrPush, acrDelete
]: {
  name: guid(registry.id, serviceIdentityPrincipalId, role)
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
    principalId: serviceIdentityPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

// Build jobs and previews only ever pull.
resource buildPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, buildIdentityPrincipalId, acrPull)
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', acrPull)
    principalId: buildIdentityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource secretsReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(keyVault.id, serviceIdentityPrincipalId, keyVaultSecretsUser)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: serviceIdentityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource telemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, serviceIdentityPrincipalId, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: serviceIdentityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Instead of Contributor on the group: exactly the Container Apps actions the service performs,
// plus assigning the build identity to the jobs and apps it creates.
// Custom role names are unique per tenant, and so are their display names: both carry the
// subscription and the resource group, so two deployments never collide.
resource orchestratorRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, resourceGroup().id, 'foundry-build-orchestrator')
  properties: {
    roleName: 'Foundry build orchestrator (${subscription().subscriptionId}/${resourceGroup().name})'
    description: 'Create, start, stop and delete ACA jobs and container apps of the Foundry build service.'
    type: 'CustomRole'
    assignableScopes: [ resourceGroup().id ]
    permissions: [
      {
        actions: [
          'Microsoft.App/jobs/*'
          'Microsoft.App/containerApps/*'
          'Microsoft.App/managedEnvironments/read'
          'Microsoft.App/managedEnvironments/join/action'
          'Microsoft.App/managedEnvironments/certificates/read'
          'Microsoft.ManagedIdentity/userAssignedIdentities/read'
          'Microsoft.ManagedIdentity/userAssignedIdentities/assign/action'
        ]
        notActions: []
      }
    ]
  }
}

resource orchestrator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, serviceIdentityPrincipalId, orchestratorRole.id)
  properties: {
    roleDefinitionId: orchestratorRole.id
    principalId: serviceIdentityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The deploying principal may read job state and objects when troubleshooting.
resource deployerRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in [
  storageBlobDataContributor, storageTableDataContributor
]: if (!empty(principalId)) {
  name: guid(jobStorage.id, principalId, role)
  scope: jobStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
    principalId: principalId
    principalType: principalType
  }
}]

output buildIdentityId string = buildIdentity.id
