// The storage account: the host's AzureWebJobsStorage (timer locks, queue triggers), the sync's
// tables and the sync-units queues, and the blob container Flex Consumption deploys from.
// Shared keys are off: every caller authenticates with Microsoft Entra ID.

@description('Name of the storage account (3-24 lowercase letters and digits).')
param name string
param location string
param tags object = {}

@description('Blob container holding the deployment package of the Function App.')
param deploymentContainerName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  //checkov:skip=CKV_AZURE_35:Flex Consumption without a virtual network reaches storage over its public endpoint; access is Entra ID only (shared keys off)
  //checkov:skip=CKV_AZURE_59:No virtual network in this template, so the public endpoint stays enabled
  //checkov:skip=CKV_AZURE_206:Locally redundant storage (three copies in one datacenter) keeps cost down; organizations can be rebuilt from Partner Center by a full reconciliation (run history and change log cannot: use Standard_ZRS if they must survive a datacenter loss)
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

output id string = storage.id
output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
