// Versioning: the framework-free compatibility layer built on a migration's mappers.
export { changelog, changelogHtml, type ChangelogEntry } from './versioning/changelog.js'
export { BodyValidationError, COMPAT_ERROR_CODES, HttpError, type ErrorBody } from './versioning/http-error.js'
export { type VersionLifecycle, type VersionLifecycleDefinition } from './versioning/lifecycle.js'
export { ANONYMOUS_CLIENT, OldShapeUsage, OTHER_CLIENTS, type OldShapeUse } from './versioning/old-shape-usage.js'
export { defineVersionChain, VersionChain, type DetectedBody, type VersionChainDefinition } from './versioning/version-chain.js'
export { versionStep, type VersionStep, type VersionStepDefinition } from './versioning/version-step.js'
// The HTTP layer: one handle(request), resources in HEAD's shape.
export { CompatApi, createCompatApi, type CompatApiOptions } from './api/compat-api.js'
export { type CompatRequest, type CompatResponse } from './api/request.js'
export { storeResource, type ResourceHandlers, type StoreResourceOptions } from './api/resource.js'
export { type ChosenVersion, type VersionSelection, type VersionSource } from './api/version-selection.js'
// Adapters: thin, one per framework.
export { compatExpress } from './adapters/express.js'
export { compatFastify } from './adapters/fastify.js'
export { compatHono } from './adapters/hono.js'
