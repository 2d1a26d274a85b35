// Key Vault in RBAC mode holding the Partner Center client secret and SYNC_TOKEN_ENCRYPTION_KEY.
// App settings reference the secrets by URI (@Microsoft.KeyVault(SecretUri=...)), so the values never
// sit in an app setting. A value left empty here leaves the vault's secret as it is (a deployment
// without it changes nothing); set or rotate it with `az keyvault secret set` (docs/deploy.md).

@description('Name of the Key Vault (3-24 letters, digits and dashes).')
param name string
param location string
param tags object = {}

@secure()
@description('The single-account Partner Center client secret (PARTNER_CENTER_CLIENT_SECRET); empty: not created.')
param partnerCenterClientSecret string = ''

@secure()
@description('The Fernet key that encrypts rotated refresh tokens (SYNC_TOKEN_ENCRYPTION_KEY); empty: not created.')
param syncTokenEncryptionKey string = ''

// Secret names allow letters, digits and dashes only: the app setting names with '_' -> '-'.
var clientSecretName = 'PARTNER-CENTER-CLIENT-SECRET'
var tokenKeyName = 'SYNC-TOKEN-ENCRYPTION-KEY'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  //checkov:skip=CKV_AZURE_109:Key Vault references are resolved by App Service over the public endpoint when the app has no virtual network; access is RBAC-only
  //checkov:skip=CKV_AZURE_189:Same reason as CKV_AZURE_109: public network access stays enabled without a virtual network
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource clientSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(partnerCenterClientSecret)) {
  //checkov:skip=CKV_AZURE_41:The client secret's lifetime is set on the Entra app registration; an expiry here would break the reference before the secret itself expires
  //checkov:skip=CKV_AZURE_114:contentType is set below; checkov 3.3.30 does not look inside a conditional resource (tests/deploy asserts it from the parsed tree)
  parent: vault
  name: clientSecretName
  properties: {
    value: partnerCenterClientSecret
    contentType: 'text/plain'
  }
}

resource tokenKey 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(syncTokenEncryptionKey)) {
  //checkov:skip=CKV_AZURE_41:Rotating the Fernet key means re-encrypting the stored refresh tokens, an operator's decision; an expiry would silently break the reference
  //checkov:skip=CKV_AZURE_114:contentType is set below; checkov 3.3.30 does not look inside a conditional resource (tests/deploy asserts it from the parsed tree)
  parent: vault
  name: tokenKeyName
  properties: {
    value: syncTokenEncryptionKey
    contentType: 'text/plain'
  }
}

output id string = vault.id
output name string = vault.name
output uri string = vault.properties.vaultUri
// Versionless URIs (addresses, not values): a reference follows the secret's latest version.
output clientCredentialUri string = '${vault.properties.vaultUri}secrets/${clientSecretName}'
output tokenEncryptionUri string = '${vault.properties.vaultUri}secrets/${tokenKeyName}'
