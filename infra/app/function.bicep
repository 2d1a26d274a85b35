// The Function App on Flex Consumption: Python 3.11, deployed from a blob container it reaches
// with the user-assigned identity, and configured by app settings that hold no key or secret.

param name string
param location string
param tags object = {}
param planId string

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string

@description('Blob container URL (https://<account>.blob.core.windows.net/<container>) Flex Consumption deploys from.')
param deploymentContainerUrl string

@minValue(1)
@maxValue(1000)
@description('Most instances the app scales out to (Flex Consumption).')
param maximumInstanceCount int

@allowed([512, 2048, 4096])
@description('Memory of each instance in MB (Flex Consumption).')
param instanceMemoryMB int

@description('App settings, name to value (values are plain text or Key Vault references).')
param appSettings object

@description('Names of further app settings whose values are Key Vault secrets of the same name with \'_\' -> \'-\' (the settings PARTNER_CENTER_ACCOUNTS names in clientSecretSetting and refreshTokenSetting).')
param keyVaultSecretSettings array = []

@description('URI of the Key Vault that holds those secrets (https://<name>.vault.azure.net/).')
param keyVaultUri string

var plainSettings = [for setting in items(appSettings): {
  name: setting.key
  value: setting.value
}]
var secretReferenceSettings = [for settingName in keyVaultSecretSettings: {
  name: settingName
  value: '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/${replace(settingName, '_', '-')})'
}]

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  //checkov:skip=CKV_AZURE_17:Client certificates are not how the Platform or Partner Center call this app (function keys and signed webhook events)
  //checkov:skip=CKV_AZURE_222:Public network access stays on: Partner Center webhooks and the Platform call the app over the internet
  //checkov:skip=CKV_AZURE_212:Flex Consumption scales instances from zero itself (maximumInstanceCount); a fixed minimum would bill around the clock
  //checkov:skip=CKV_AZURE_213:The sync's health is its run log (GET /api/ops/status, alert rules), not an HTTP ping; a ping would keep an instance running between timers
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: planId
    httpsOnly: true
    clientCertEnabled: false
    // Key Vault references resolve with the user-assigned identity (it holds Key Vault Secrets User).
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: concat(plainSettings, secretReferenceSettings)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// No FTP or basic-auth publishing: azd deploys with Entra ID to the deployment container.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

output id string = functionApp.id
output name string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName
