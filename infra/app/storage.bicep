// Storage: one account for the Functions host (task hub, deployment package), one for job data.
// Neither accepts shared keys: every client signs in with an Entra identity.
param location string
param tags object
param resourceToken string

@description('Blob container of job objects (SPEC, TASKS, logs, artifacts) in the job account.')
param jobContainerName string = 'foundry-jobs'

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
    resource jobs 'containers' = { name: jobContainerName }
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
              filters: { blobTypes: [ 'blockBlob', 'appendBlob' ], prefixMatch: [ '${jobContainerName}/jobs/' ] }
              actions: { baseBlob: { delete: { daysAfterModificationGreaterThan: 30 } } }
            }
          }
        ]
      }
    }
  }
}

output hostStorageName string = hostStorage.name
output hostBlobEndpoint string = hostStorage.properties.primaryEndpoints.blob
output hostQueueEndpoint string = hostStorage.properties.primaryEndpoints.queue
output hostTableEndpoint string = hostStorage.properties.primaryEndpoints.table
output deploymentContainerName string = hostStorage::blob::deployments.name
output jobStorageName string = jobStorage.name
output jobContainerName string = jobStorage::blob::jobs.name
