// Monitoring: the Log Analytics workspace (also the ACA environment's log sink) and Application
// Insights, which accepts telemetry from Entra identities only.
param location string
param tags object
param resourceToken string

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

output logAnalyticsName string = logs.name
output appInsightsName string = appInsights.name
output appInsightsConnectionString string = appInsights.properties.ConnectionString
