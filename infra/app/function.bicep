// The Function App (Flex Consumption) and every setting the code reads. main.bicep deploys this
// module after rbac.bicep, so the Key Vault references below resolve on the app's first start.
param location string
param tags object
param resourceToken string

@description('Resource id of the user-assigned identity the app runs as (identity.bicep).')
param serviceIdentityId string
param serviceIdentityClientId string

param hostBlobEndpoint string
param hostQueueEndpoint string
param hostTableEndpoint string
param deploymentContainerName string
param jobStorageName string
param jobContainerName string

param appInsightsConnectionString string

param keyVaultName string
param apiKeysSecretName string

param registryName string
param acaEnvironmentId string
param buildIdentityId string

@description('Builder image reference; empty until the postprovision hook has built it (the Azure backend reports it missing, and the API answers 503 misconfigured, meanwhile).')
param builderImage string
@description('The LLM proxy as builders reach it (their ANTHROPIC_BASE_URL): proxy.bicep\'s url output. Empty until the proxy is deployed (the postprovision hook provisions again once its image exists).')
param builderProxyUrl string
param previewDomain string
param previewCertificates object

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-foundry-${resourceToken}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { tier: 'FlexConsumption', name: 'FC1' }
  properties: { reserved: true }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: 'func-foundry-${resourceToken}'
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${serviceIdentityId}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: serviceIdentityId
    siteConfig: { minTlsVersion: '1.2', ftpsState: 'Disabled' }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: serviceIdentityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: 40
        instanceMemoryMB: 2048
        alwaysReady: [ { name: 'durable', instanceCount: 1 } ]
      }
      runtime: { name: 'python', version: '3.11' }
    }
  }
}

var kvRef = '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName='

// Every setting the code reads (tests/infra/test_drift.py keeps this list and the code in step).
// The LLM proxy's settings, the Anthropic key among them, are the proxy app's (proxy.bicep).
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: functionApp
  name: 'appsettings'
  properties: {
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: serviceIdentityClientId
    AzureWebJobsStorage__blobServiceUri: hostBlobEndpoint
    AzureWebJobsStorage__queueServiceUri: hostQueueEndpoint
    AzureWebJobsStorage__tableServiceUri: hostTableEndpoint
    APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${serviceIdentityClientId};Authorization=AAD'
    // host.json has "telemetryMode": "OpenTelemetry"; this lets the worker stream its own OTel
    // logs and spans, linked to the host's, instead of the host duplicating them.
    PYTHON_ENABLE_OPENTELEMETRY: 'true'
    AZURE_CLIENT_ID: serviceIdentityClientId
    FOUNDRY_SERVICE_TASK_HUB: 'foundry'
    FOUNDRY_SERVICE_MAINTENANCE_SCHEDULE: '0 */1 * * * *'
    FOUNDRY_SERVICE_API_KEYS: '${kvRef}${apiKeysSecretName})'
    FOUNDRY_SERVICE_BUILD_BACKEND: 'azure_container_apps'
    FOUNDRY_SERVICE_BUILDER_PROXY_URL: builderProxyUrl
    FOUNDRY_SERVICE_BUILDER_API_URL: 'https://${functionApp.properties.defaultHostName}'
    FOUNDRY_SERVICE_TABLE_PREFIX: 'foundry'
    FOUNDRY_SERVICE_STORAGE_CONNECT_TIMEOUT_SECS: '3'
    FOUNDRY_SERVICE_STORAGE_READ_TIMEOUT_SECS: '3'
    FOUNDRY_SERVICE_STORAGE_RETRY_TOTAL: '2'
    FOUNDRY_SERVICE_PREVIEW_DOMAIN: previewDomain
    FOUNDRY_SERVICE_MAX_INPUT_BYTES: '524288'
    FOUNDRY_SERVICE_MIN_TTL_HOURS: '1'
    FOUNDRY_SERVICE_DEFAULT_TTL_HOURS: '24'
    FOUNDRY_SERVICE_MAX_TTL_HOURS: '72'
    FOUNDRY_SERVICE_QUEUE_CAP: '50'
    FOUNDRY_SERVICE_MAX_CONCURRENT_BUILDS: '3'
    FOUNDRY_SERVICE_BUILD_TIMEOUT_SECS: '3600'
    FOUNDRY_SERVICE_IMAGE_BUILD_TIMEOUT_SECS: '1800'
    FOUNDRY_SERVICE_DEPLOY_TIMEOUT_SECS: '600'
    FOUNDRY_SERVICE_POLL_MAX_SECS: '10'
    FOUNDRY_SERVICE_BUILD_CHECK_SECS: '0'
    FOUNDRY_SERVICE_CHECK_WAIT_SECS: '20'
    FOUNDRY_SERVICE_HISTORY_RETENTION_DAYS: '30'
    FOUNDRY_SERVICE_AZURE_SUBSCRIPTION_ID: subscription().subscriptionId
    FOUNDRY_SERVICE_AZURE_RESOURCE_GROUP: resourceGroup().name
    FOUNDRY_SERVICE_AZURE_LOCATION: location
    FOUNDRY_SERVICE_AZURE_STORAGE_ACCOUNT: jobStorageName
    FOUNDRY_SERVICE_AZURE_STORAGE_CONTAINER: jobContainerName
    FOUNDRY_SERVICE_AZURE_ACR_NAME: registryName
    FOUNDRY_SERVICE_AZURE_ACA_ENVIRONMENT: acaEnvironmentId
    FOUNDRY_SERVICE_AZURE_BUILDER_IMAGE: builderImage
    FOUNDRY_SERVICE_AZURE_IDENTITY_RESOURCE_ID: buildIdentityId
    FOUNDRY_SERVICE_AZURE_MI_CLIENT_ID: serviceIdentityClientId
    FOUNDRY_SERVICE_AZURE_BUILD_CPU: '2.0'
    FOUNDRY_SERVICE_AZURE_BUILD_MEMORY: '4Gi'
    FOUNDRY_SERVICE_AZURE_PREVIEW_CPU: '0.5'
    FOUNDRY_SERVICE_AZURE_PREVIEW_MEMORY: '1Gi'
    FOUNDRY_SERVICE_AZURE_PREVIEW_CERTIFICATES: string(previewCertificates)
    FOUNDRY_SERVICE_AZURE_WARM_PATH: '/'
    FOUNDRY_SERVICE_AZURE_HTTP_TIMEOUT_SECS: '60'
    FOUNDRY_SERVICE_SAS_GRANT_MARGIN_SECS: '1800'
    FOUNDRY_SERVICE_AZURE_SIGNED_URL_TTL_SECS: '900'
  }
}

output functionAppName string = functionApp.name
output functionAppUrl string = 'https://${functionApp.properties.defaultHostName}'
