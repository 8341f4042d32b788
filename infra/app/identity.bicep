// The Function App's user-assigned identity. It is its own module, created before the app, so
// that rbac.bicep can grant it Key Vault and storage access before the app's settings reference
// them (a Key Vault reference resolved before its role assignment exists stays unresolved).
param location string
param tags object
param resourceToken string

@description('The Function App runs as this identity (storage, ARM, ACR Tasks, Key Vault).')
resource serviceIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-foundry-svc-${resourceToken}'
  location: location
  tags: tags
}

output id string = serviceIdentity.id
output name string = serviceIdentity.name
output clientId string = serviceIdentity.properties.clientId
output principalId string = serviceIdentity.properties.principalId
