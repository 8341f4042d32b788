// Foundry build service: everything in one resource group (azd: `azd up`).
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; used to name the resource group and derive resource names.')
param environmentName string

@minLength(1)
@description('Azure region for every resource.')
param location string

@description('Object id of the deploying user; gets data access for troubleshooting.')
param principalId string = ''

@description('The builder image (foundry-builder) that ACA Jobs run, e.g. <acr>.azurecr.io/foundry-builder:1.')
param builderImage string

@description('Root domain of preview URLs: https://<app>.<org-slug>.<previewDomain>.')
param previewDomain string = 'foundry.local'

@description('org slug (or *) -> managed environment certificate resource id for preview custom domains.')
param previewCertificates object = {}

var tags = { 'azd-env-name': environmentName, workload: 'foundry-build-service' }
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-foundry-${environmentName}'
  location: location
  tags: tags
}

module resources 'app/resources.bicep' = {
  name: 'foundry-resources'
  scope: rg
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    builderImage: builderImage
    previewDomain: previewDomain
    previewCertificates: previewCertificates
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'foundry-rbac'
  scope: rg
  params: {
    hostStorageName: resources.outputs.hostStorageName
    jobStorageName: resources.outputs.jobStorageName
    registryName: resources.outputs.registryName
    keyVaultName: resources.outputs.keyVaultName
    appInsightsName: resources.outputs.appInsightsName
    serviceIdentityPrincipalId: resources.outputs.serviceIdentityPrincipalId
    buildIdentityPrincipalId: resources.outputs.buildIdentityPrincipalId
    buildIdentityName: resources.outputs.buildIdentityName
    principalId: principalId
  }
}

output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_NAME string = resources.outputs.functionAppName
output FOUNDRY_SERVICE_URL string = resources.outputs.functionAppUrl
output AZURE_KEY_VAULT_NAME string = resources.outputs.keyVaultName
output AZURE_CONTAINER_REGISTRY_NAME string = resources.outputs.registryName
