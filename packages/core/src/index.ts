export {
  AUDIT_GENESIS,
  AUDIT_KEY_ENV,
  AuditLog,
  formatAuditHead,
  parseAuditHead,
  type AuditAction,
  type AuditEntry,
  type AuditHead,
  type AuditLogOptions,
  type AuditVerification,
  type StoredAuditEntry,
} from './control/audit-log.js'
export { keyRingFromEnv, type KeyRing, type SecretKey } from './control/secret-keys.js'
export { PAYLOAD_KEY_ENV, PayloadSealer, type SealedValue } from './control/sealed-payload.js'
export { redactDriverError, redactDriverText } from './observe/driver-redaction.js'
export {
  CanonicalNumber,
  canonicalHash,
  canonicalize,
  canonicalRecordText,
  canonicalText,
  normalizeDecimal,
  type CanonicalOptions,
  type CanonicalValue,
} from './model/canonical.js'
export { compareRecords, type Comparison, type ComparisonRules, type Difference, type DifferenceKind } from './model/compare.js'
export { currentCutoverContext, withCutoverContext, type CutoverContext } from './runtime/context.js'
export { CONTROL_SCHEMA, ensureSchema } from './control/control-schema.js'
export {
  createCutover,
  Cutover,
  GUARD_ACTOR,
  MigrationRuntime,
  type CloseReport,
  type CutoverOptions,
  type PhaseChange,
  type ReadComparison,
  type ReadComparisonDetail,
} from './runtime/cutover.js'
export { DeadLetterTable, type DeadLetter, type DeadLetterSink, type StoredDeadLetter } from './control/dead-letters.js'
export { DEFAULT_FLAGS, envName, readEnvFlags, type MigrationFlags } from './runtime/env-flags.js'
export {
  ConfigError,
  CutoverError,
  MapperError,
  PhaseGateError,
  PhaseTransitionError,
  RevertWindowClosedError,
  StoreError,
  WriteRejectedError,
  type ConfigProblem,
  type FieldIssue,
} from './model/errors.js'
export {
  compatibilityViewSql,
  convert,
  copy,
  copyForward,
  drop,
  fieldMapper,
  join,
  rename,
  scale,
  split,
  sqlIdentifier,
  withDefault,
  type ConvertOptions,
} from './model/field-map.js'
export type { ColumnRef, FieldMap, FieldRule } from './model/field-rule.js'
export { HealthGuard, type GuardSignal, type GuardThresholds, type GuardVerdict } from './runtime/guard.js'
export { createJsonLogger, silentLogger, type LogFields, type Logger, type LogLevel } from './observe/logger.js'
export { defineMapper, type Mapper, type MapperDefinition, type MappingContext } from './model/mapper.js'
export { Metrics, type HistogramSummary, type Labels, type MetricsSink, type MetricsSnapshot } from './observe/metrics.js'
export { METRIC_CATALOG, prometheusName, STATE_GAUGES, type ExportedMetric, type MetricKind } from './observe/metric-catalog.js'
export { exportMetricsToOpenTelemetry, type OpenTelemetryMetricsOptions } from './observe/otel-metrics.js'
export { prometheusMetrics, type PrometheusMetricsOptions } from './observe/prometheus-metrics.js'
export { startMetricsServer } from './observe/metrics-server.js'
export { backfillProgressMetrics } from './observe/backfill-metrics.js'
export {
  defineMigration,
  type Migration,
  type MigrationDefinition,
  type MirrorSettings,
  type StaleSideWritePolicy,
} from './model/migration.js'
export {
  MirrorQueue,
  type ApplyOutcome,
  type ChangeEvent,
  type MirrorCloseReport,
  type MirrorDirection,
  type MirrorQueueOptions,
  type RetryPolicy,
} from './runtime/mirror-queue.js'
export {
  assertTransition,
  canTransition,
  isPhase,
  mirrorsWritesOf,
  PHASE_BEHAVIOR,
  PHASE_TRANSITIONS,
  PHASES,
  type Phase,
  type PhaseBehavior,
  type Side,
  TENANT_PHASES,
  TenantPhaseTransitionError,
} from './model/phase.js'
export { BUCKETS, bucketInPercent, rampReadSide, routingBucket, type TenantOverrides } from './model/routing.js'
export {
  compositeKey,
  isCompositeKey,
  isKeyValue,
  compareKeys,
  keyString,
  recordKey,
  storeRecordKey,
  type CapturableTable,
  type CompositeKey,
  type KeyPart,
  type KeyValue,
  type Row,
  type Store,
  type StoreShape,
  type WriteMode,
  type WriteResult,
  type StoredWrite,
} from './model/store.js'
export type { FilterNode, NewStoreReader, SortKey, TranslatedQuery } from './model/translated-query.js'
// Jobs: backfill, verification, reconciliation (issue 5).
export { backfill, backfillFingerprint, type BackfillOptions, type BackfillProgress, type BackfillSummary, type BatchMismatch, type KeyRange } from './jobs/backfill.js'
export { BatchSizer, type BatchSizing } from './jobs/batch-sizer.js'
export { BackfillConfigChangedError, CheckpointTable, LeaseLostError, type BackfillCounts, type Checkpoint } from './control/checkpoint.js'
export { JobControl, type JobControlState } from './control/job-control.js'
export { QuarantineTable, type QuarantinedRecord, type StoredQuarantinedRecord } from './control/quarantine.js'
export { rowDigest, rowHash, type RowHash } from './jobs/row-digest.js'
export { Throttle, type ThrottleReason, type ThrottleSettings } from './jobs/throttle.js'
export {
  columnKinds,
  canonicalTextSql,
  ensureCanonicalJsonFunction,
  postgresMappedSegments,
  postgresSegments,
  postgresTableSegments,
  type ColumnKind,
  type HashedField,
  type PostgresSegmentsOptions,
} from './jobs/postgres-checksum.js'
export {
  mappedFields,
  newStoreSegments,
  oldStoreSegments,
  storeSegments,
  type SegmentChecksum,
  type SegmentLevel,
  type SegmentSource,
} from './jobs/segment-checksum.js'
export {
  inspectKeys,
  verifyExhaustive,
  verifySample,
  type ExhaustiveVerificationOptions,
  type SampledVerificationOptions,
  type VerificationStage,
} from './jobs/verification.js'
export {
  formatReport,
  VerificationReports,
  type Inconsistency,
  type InconsistencyKind,
  type VerificationCounts,
  type VerificationReport,
} from './control/verification-report.js'
export { currentPhase, reconcile, type ReconcileOptions, type ReconcileResult, type Repair } from './jobs/reconcile.js'
export { BackfillJobs, type BackfillJobsOptions, type PlannedRange } from './jobs/backfill-jobs.js'
export { defineCutoverConfig, type CutoverConfig, type CutoverConfigModule, type MigrationJobSettings } from './cli/cutover-config.js'
// Phase gates and the safety net after complete (issue 15).
export { DEFAULT_GATES, type GateOverrides, type GateReport, type GateResult, type GateSettings } from './control/phase-gates.js'
export { phasePlan, type PhaseDwell, type PhasePlan } from './control/phase-plan.js'
export type { SafetyNetState } from './control/safety-net.js'
// Compatibility views: old tables presented, writable, over the new one (issue 11).
export { CompatibilityViews, compatibilityViewsSql, type ViewsResult } from './compat/compatibility-views.js'
export { defineCompatibilityView, type CompatibilityView, type CompatibilityViewDefinition, type TriggerOperation } from './compat/view-definition.js'
export { migrationViews, type MigrationViewsSettings, type ViewsConfig } from './compat/views-config.js'
export { CapturePrivilegeError, CaptureTableMissingError, CaptureUnsupportedError } from './capture/capture-errors.js'
export { capturableSides, captureStatus, installCapture, removeCapture, type CaptureStatus } from './capture/capture-install.js'
export { type CaptureMode, type CaptureSettings, type ChangeLogSettings } from './capture/capture-settings.js'
export { ChangeLogCapture } from './capture/change-log-capture.js'
export { ChangeLogWorker, type ChangeLogWorkerOptions, type RoundResult } from './capture/change-log-worker.js'
export type { RuntimeCapture } from './capture/runtime-capture.js'
export { type FleetOptions, FleetMember, CONTROL_CHANNEL } from './runtime/fleet-member.js'
export { type BarrierSettings, type PassedBarrier } from './runtime/phase-barrier.js'
export { authorityCanMove, type FenceReason, movesWriteAuthority, WriteFencedError } from './runtime/write-fence.js'
export { InstanceTable, type InstanceMigrationState, type InstanceRecord } from './control/instances.js'
export { BarrierTable, type Fence, type OpenBarrier } from './control/barriers.js'
export { TenantStateTable, type TenantOverride } from './control/tenant-state.js'
export { type MigrationSettings } from './model/settings.js'
