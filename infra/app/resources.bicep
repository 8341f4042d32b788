// Resources of the Foundry build service (resource-group scope).
param location string
param tags object
param resourceToken string
param builderImage string
param previewDomain string
param previewCertificates object

// ---- identities -----------------------------------------------------------------------------
@description('The Function App runs as this identity (storage, ARM, ACR Tasks, Key Vault).')
resource serviceIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-foundry-svc-${resourceToken}'
  location: location
  tags: tags
}

@description('Build jobs and previews run as this identity: it can only pull from the registry.')
resource buildIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-foundry-build-${resourceToken}'
  location: location
  tags: tags
}

// ---- monitoring -----------------------------------------------------------------------------
resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-foundry-${resourceToken}'
  location: location
  tags: tags
  properties: { sku: { name: 'PerGB2018' }, retentionInDays: 30 }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-foundry-${resourceToken}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    DisableLocalAuth: true // ingestion with the service identity only
  }
}

// ---- storage: one account for the Functions host, one for job data ---------------------------
resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'stfnhost${resourceToken}'
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
  resource blob 'blobServices' = {
    name: 'default'
    resource deployments 'containers' = { name: 'deployments' }
  }
}

resource jobStorage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'stjobs${resourceToken}'
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowSharedKeyAccess: false // grants are user-delegation SAS, signed with the identity
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
  resource blob 'blobServices' = {
    name: 'default'
    resource jobs 'containers' = { name: 'foundry-jobs' }
  }
  resource lifecycle 'managementPolicies' = {
    name: 'default'
    properties: {
      policy: {
        rules: [
          {
            name: 'expire-job-objects'
            enabled: true
            type: 'Lifecycle'
            definition: {
              filters: { blobTypes: [ 'blockBlob', 'appendBlob' ], prefixMatch: [ 'foundry-jobs/jobs/' ] }
              actions: { baseBlob: { delete: { daysAfterModificationGreaterThan: 30 } } }
            }
          }
        ]
      }
    }
  }
}

// ---- secrets ---------------------------------------------------------------------------------
@description('Holds foundry-api-keys and anthropic-api-key. Set them after the first deploy; until then every /v1 call is refused (fail closed).')
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

// ---- registry and container apps environment ----------------------------------------------------
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

// ---- the Function App (Flex Consumption) ------------------------------------------------------
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
    userAssignedIdentities: { '${serviceIdentity.id}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: serviceIdentity.id
    siteConfig: { minTlsVersion: '1.2', ftpsState: 'Disabled' }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostStorage.properties.primaryEndpoints.blob}deployments'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: serviceIdentity.id
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

var kvRef = '@Microsoft.KeyVault(VaultName=${keyVault.name};SecretName='

// Every setting the code reads (tests/test_infra_drift.py keeps this list and the code in step).
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: functionApp
  name: 'appsettings'
  properties: {
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: serviceIdentity.properties.clientId
    AzureWebJobsStorage__blobServiceUri: hostStorage.properties.primaryEndpoints.blob
    AzureWebJobsStorage__queueServiceUri: hostStorage.properties.primaryEndpoints.queue
    AzureWebJobsStorage__tableServiceUri: hostStorage.properties.primaryEndpoints.table
    APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${serviceIdentity.properties.clientId};Authorization=AAD'
    AZURE_CLIENT_ID: serviceIdentity.properties.clientId
    FOUNDRY_SERVICE_TASK_HUB: 'foundry'
    FOUNDRY_SERVICE_MAINTENANCE_SCHEDULE: '0 */1 * * * *'
    FOUNDRY_SERVICE_API_KEYS: '${kvRef}foundry-api-keys)'
    FOUNDRY_SERVICE_ANTHROPIC_API_KEY: '${kvRef}anthropic-api-key)'
    FOUNDRY_SERVICE_ANTHROPIC_BASE_URL: 'https://api.anthropic.com'
    FOUNDRY_SERVICE_BUILD_BACKEND: 'azure_container_apps'
    FOUNDRY_SERVICE_BUILDER_PROXY_URL: 'https://${functionApp.properties.defaultHostName}'
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
    FOUNDRY_SERVICE_PROXY_MODEL_PREFIXES: 'claude-'
    FOUNDRY_SERVICE_PROXY_MAX_BODY_BYTES: '4194304'
    FOUNDRY_SERVICE_PROXY_MAX_OUTPUT_TOKENS: '64000'
    FOUNDRY_SERVICE_PROXY_MAX_CONCURRENT: '64'
    FOUNDRY_SERVICE_AZURE_SUBSCRIPTION_ID: subscription().subscriptionId
    FOUNDRY_SERVICE_AZURE_RESOURCE_GROUP: resourceGroup().name
    FOUNDRY_SERVICE_AZURE_LOCATION: location
    FOUNDRY_SERVICE_AZURE_STORAGE_ACCOUNT: jobStorage.name
    FOUNDRY_SERVICE_AZURE_STORAGE_CONTAINER: 'foundry-jobs'
    FOUNDRY_SERVICE_AZURE_ACR_NAME: registry.name
    FOUNDRY_SERVICE_AZURE_ACA_ENVIRONMENT: acaEnvironment.id
    FOUNDRY_SERVICE_AZURE_BUILDER_IMAGE: builderImage
    FOUNDRY_SERVICE_AZURE_IDENTITY_RESOURCE_ID: buildIdentity.id
    FOUNDRY_SERVICE_AZURE_MI_CLIENT_ID: serviceIdentity.properties.clientId
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
output hostStorageName string = hostStorage.name
output jobStorageName string = jobStorage.name
output registryName string = registry.name
output keyVaultName string = keyVault.name
output appInsightsName string = appInsights.name
output serviceIdentityPrincipalId string = serviceIdentity.properties.principalId
output buildIdentityPrincipalId string = buildIdentity.properties.principalId
output buildIdentityName string = buildIdentity.name
