// The whole service in one resource group: `azd up` provisions this, then deploys the code.
// One resource concern per module under app/; this file names things and wires them together.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; seeds the resource names and the resource group name.')
param environmentName string

@minLength(1)
@description('Azure region of every resource; it must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Resource group name; empty: rg-<environmentName>.')
param resourceGroupName string = ''

@minValue(1)
@maxValue(1000)
@description('Most Function App instances Flex Consumption scales out to.')
param maximumInstanceCount int = 40

@allowed([512, 2048, 4096])
@description('Memory per instance in MB.')
param instanceMemoryMB int = 2048

@description('NCRONTAB schedule of the incremental timer (INCREMENTAL_SYNC_SCHEDULE); empty: every 5 minutes.')
param incrementalSyncSchedule string = ''

@description('NCRONTAB schedule of the full reconciliation (FULL_SYNC_SCHEDULE); empty: 02:00 UTC daily.')
param fullSyncSchedule string = ''

@description('Non-secret app settings of the sync, name to value (accounts, request budget, dispatch, webhook trust). An empty value leaves the app\'s default.')
param syncSettings object = {}

@secure()
@description('Single-account Partner Center client secret, stored in Key Vault as PARTNER-CENTER-CLIENT-SECRET; empty: the vault\'s secret is left as it is.')
param partnerCenterClientSecret string = ''

@secure()
@description('SYNC_TOKEN_ENCRYPTION_KEY (a Fernet key), stored in Key Vault as SYNC-TOKEN-ENCRYPTION-KEY; empty: the vault\'s secret is left as it is.')
param syncTokenEncryptionKey string = ''

@description('Comma-separated app setting names that PARTNER_CENTER_ACCOUNTS names (clientSecretSetting, refreshTokenSetting); each becomes a Key Vault reference to the secret of that name with \'_\' -> \'-\', which you set in the vault.')
param accountSecretSettings string = ''

@description('Resource id of an action group for the alert rules; empty: the rules fire without notifying anyone.')
param actionGroupId string = ''

@description('Minutes between two incremental runs (INCREMENTAL_SYNC_SCHEDULE): the lag alert fires past two.')
param incrementalIntervalMinutes int = 5

@description('Principal id of the deployer (azd sets AZURE_PRINCIPAL_ID); granted Key Vault Secrets Officer to set secrets.')
param principalId string = ''

@description('Create the example subscription that delivers organization events to a queue in the app\'s storage account.')
param platformEventsExampleQueue bool = false

@allowed(['User', 'ServicePrincipal', 'Group'])
@description('Kind of principal principalId is: User for `azd up` from a workstation, ServicePrincipal in the deploy workflow.')
param principalType string = 'User'

@description('Application (client) id of the operators\' Entra app registration (app roles Sync.Reader, Sync.Operator); empty: no sign-in is configured and every operator route answers 401 (docs/deploy.md#operators-sign-in).')
param operatorsAppClientId string = ''

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = 'func-${resourceToken}'
var deploymentContainerName = 'deployment-package'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: empty(resourceGroupName) ? 'rg-${environmentName}' : resourceGroupName
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
  }
}

module keyVault 'app/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
    partnerCenterClientSecret: partnerCenterClientSecret
    syncTokenEncryptionKey: syncTokenEncryptionKey
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

module plan 'app/plan.bicep' = {
  name: 'plan'
  scope: rg
  params: {
    name: 'plan-${resourceToken}'
    location: location
    tags: tags
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    identityPrincipalId: identity.outputs.principalId
    deployerPrincipalId: principalId
    deployerPrincipalType: principalType
  }
}

// The host's storage (AzureWebJobsStorage: timer locks, queue triggers) and the sync's storage
// (SYNC_STORAGE: tables, sync-units queues) are one account, reached with the identity.
var hostSettings = {
  AzureWebJobsStorage__accountName: storage.outputs.name
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.outputs.clientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.connectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.outputs.clientId};Authorization=AAD'
  // The Python worker exports OpenTelemetry to Application Insights itself (host.json telemetryMode).
  PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: 'true'
  // The host refuses a larger request body (413) before buffering it (its default is 100 MB). The
  // largest any function takes is 64 KiB (the ops API; a webhook event at most 16 KiB): twice that.
  FUNCTIONS_REQUEST_BODY_SIZE_LIMIT: '131072'
}
var syncStorageSettings = {
  SYNC_STORAGE__tableServiceUri: storage.outputs.tableEndpoint
  SYNC_STORAGE__queueServiceUri: storage.outputs.queueEndpoint
  SYNC_STORAGE__credential: 'managedidentity'
  SYNC_STORAGE__clientId: identity.outputs.clientId
}
// The timers' %...% schedules must resolve to a value, so an empty parameter means the default.
var scheduleSettings = {
  INCREMENTAL_SYNC_SCHEDULE: empty(incrementalSyncSchedule) ? '0 */5 * * * *' : incrementalSyncSchedule
  FULL_SYNC_SCHEDULE: empty(fullSyncSchedule) ? '0 0 2 * * *' : fullSyncSchedule
}
// Secrets are Key Vault references, set whether or not this deployment carries a value: a run
// without the secret parameters must not drop the references (app settings are replaced whole).
var secretSettings = {
  PARTNER_CENTER_CLIENT_SECRET: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.clientCredentialUri})'
  SYNC_TOKEN_ENCRYPTION_KEY: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.tokenEncryptionUri})'
}
// Organization events for the Platform (docs/events.md), published with the app's identity.
var eventSettings = {
  PLATFORM_EVENTS__topicEndpointUri: events.outputs.endpoint
  PLATFORM_EVENTS__credential: 'managedidentity'
  PLATFORM_EVENTS__clientId: identity.outputs.clientId
}
var appSettings = union(syncSettings, scheduleSettings, secretSettings, syncStorageSettings, hostSettings, eventSettings)

module events 'app/events.bicep' = {
  name: 'events'
  scope: rg
  params: {
    name: 'evgt-${resourceToken}'
    location: location
    tags: tags
    identityPrincipalId: identity.outputs.principalId
    subscriptionStorageAccountName: platformEventsExampleQueue ? storage.outputs.name : ''
  }
}

module functionApp 'app/function.bicep' = {
  name: 'function-app'
  scope: rg
  params: {
    name: functionAppName
    location: location
    tags: tags
    planId: plan.outputs.id
    identityId: identity.outputs.id
    deploymentContainerUrl: '${storage.outputs.blobEndpoint}${deploymentContainerName}'
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    appSettings: appSettings
    keyVaultSecretSettings: empty(accountSecretSettings) ? [] : split(replace(accountSecretSettings, ' ', ''), ',')
    keyVaultUri: keyVault.outputs.uri
  }
  // Key Vault references and identity-based storage resolve at start-up: grant the roles first.
  dependsOn: [
    rbac
    events
  ]
}

// Operators sign in with Entra ID (App Service Authentication); the app authorizes by app role.
module auth 'app/auth.bicep' = if (!empty(operatorsAppClientId)) {
  name: 'auth'
  scope: rg
  params: {
    functionAppName: functionApp.outputs.name
    clientId: operatorsAppClientId
  }
}

// Alert rules and the operators' workbook read what the app emits (shared/telemetry/names.py).
module alerts 'app/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
    actionGroupId: actionGroupId
    incrementalIntervalMinutes: incrementalIntervalMinutes
  }
}

module workbook 'app/workbook.bicep' = {
  name: 'workbook'
  scope: rg
  params: {
    location: location
    tags: tags
    applicationInsightsId: monitoring.outputs.applicationInsightsId
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output SERVICE_API_NAME string = functionApp.outputs.name
output SERVICE_API_URI string = 'https://${functionApp.outputs.defaultHostName}'
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
// For the alert rules and workbook modules (params applicationInsightsId, logAnalyticsWorkspaceId, actionGroupId).
output APPLICATIONINSIGHTS_ID string = monitoring.outputs.applicationInsightsId
output LOG_ANALYTICS_WORKSPACE_ID string = monitoring.outputs.logAnalyticsWorkspaceId
output ACTION_GROUP_ID string = actionGroupId
