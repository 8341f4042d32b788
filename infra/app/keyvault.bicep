// Secrets: the vault and the two secrets the app reads through Key Vault references. The values
// arrive as @secure() parameters (azd prompts for them, or takes them from the azd environment),
// so the secrets exist before the app settings that reference them are written, and neither the
// deployment history nor any output ever holds a value.
param location string
param tags object
param resourceToken string

@secure()
@minLength(1)
@description('FOUNDRY_SERVICE_API_KEYS: comma-separated bearer keys for /v1, optional |limits (README, "API").')
param foundryApiKeys string

@secure()
@minLength(1)
@description('The upstream LLM credential the proxy forwards (FOUNDRY_SERVICE_ANTHROPIC_API_KEY).')
param anthropicApiKey string

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: 'kv-foundry-${resourceToken}'
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    enablePurgeProtection: true
  }
}

resource apiKeysSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: keyVault
  name: 'foundry-api-keys'
  properties: { value: foundryApiKeys, contentType: 'text/plain' }
}

resource anthropicKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: keyVault
  name: 'anthropic-api-key'
  properties: { value: anthropicApiKey, contentType: 'text/plain' }
}

output keyVaultName string = keyVault.name
output keyVaultUri string = keyVault.properties.vaultUri
// Names, never values: function.bicep builds its Key Vault references from these, which also
// makes the app settings wait for both secrets.
output apiKeysSecretName string = apiKeysSecret.name
output anthropicKeySecretName string = anthropicKeySecret.name
