export { AUDIT_GENESIS, AuditLog, type AuditAction, type AuditEntry, type StoredAuditEntry } from './audit-log.js'
export {
  CanonicalNumber,
  canonicalHash,
  canonicalize,
  canonicalRecordText,
  canonicalText,
  normalizeDecimal,
  type CanonicalOptions,
  type CanonicalValue,
} from './canonical.js'
export { compareRecords, type Comparison, type ComparisonRules, type Difference, type DifferenceKind } from './compare.js'
export { currentCutoverContext, withCutoverContext, type CutoverContext } from './context.js'
export { CONTROL_SCHEMA, ensureSchema } from './control-schema.js'
export {
  createCutover,
  Cutover,
  GUARD_ACTOR,
  MigrationRuntime,
  type CutoverOptions,
  type PhaseChange,
  type ReadComparison,
  type ReadComparisonDetail,
} from './cutover.js'
export { DeadLetterTable, type DeadLetter, type DeadLetterSink, type StoredDeadLetter } from './dead-letters.js'
export { DEFAULT_FLAGS, envName, readEnvFlags, type MigrationFlags } from './env-flags.js'
export {
  ConfigError,
  CutoverError,
  MapperError,
  PhaseTransitionError,
  StoreError,
  WriteRejectedError,
  type ConfigProblem,
  type FieldIssue,
} from './errors.js'
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
  type ColumnRef,
  type ConvertOptions,
  type FieldMap,
  type FieldRule,
} from './field-map.js'
export { HealthGuard, type GuardSignal, type GuardThresholds, type GuardVerdict } from './guard.js'
export { createJsonLogger, silentLogger, type LogFields, type Logger, type LogLevel } from './logger.js'
export { defineMapper, type Mapper, type MapperDefinition, type MappingContext } from './mapper.js'
export { Metrics, type HistogramSummary, type Labels, type MetricsSnapshot } from './metrics.js'
export {
  defineMigration,
  type Migration,
  type MigrationDefinition,
  type MirrorSettings,
  type StaleSideWritePolicy,
} from './migration.js'
export {
  MirrorQueue,
  type ApplyOutcome,
  type ChangeEvent,
  type MirrorDirection,
  type MirrorQueueOptions,
  type RetryPolicy,
} from './mirror-queue.js'
export {
  assertTransition,
  canTransition,
  isPhase,
  PHASE_BEHAVIOR,
  PHASE_TRANSITIONS,
  PHASES,
  type Phase,
  type PhaseBehavior,
  type Side,
} from './phase.js'
export { BUCKETS, bucketInPercent, rampReadSide, routingBucket, type TenantOverrides } from './routing.js'
export { keyString, type KeyValue, type Row, type Store, type WriteMode, type WriteResult } from './store.js'
// Jobs: backfill, verification, reconciliation (issue 5).
export { backfill, backfillFingerprint, type BackfillOptions, type BackfillProgress, type BackfillSummary, type BatchMismatch, type KeyRange } from './backfill.js'
export { BatchSizer, type BatchSizing } from './batch-sizer.js'
export { BackfillConfigChangedError, CheckpointTable, type BackfillCounts, type Checkpoint } from './checkpoint.js'
export { JobControl, type JobControlState } from './job-control.js'
export { QuarantineTable, type QuarantinedRecord, type StoredQuarantinedRecord } from './quarantine.js'
export { rowDigest, rowHash, type RowHash } from './row-digest.js'
export { Throttle, type ThrottleReason, type ThrottleSettings } from './throttle.js'
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
} from './postgres-checksum.js'
export {
  mappedFields,
  newStoreSegments,
  oldStoreSegments,
  storeSegments,
  type SegmentChecksum,
  type SegmentLevel,
  type SegmentSource,
} from './segment-checksum.js'
export {
  inspectKeys,
  verifyExhaustive,
  verifySample,
  type ExhaustiveVerificationOptions,
  type SampledVerificationOptions,
  type VerificationStage,
} from './verification.js'
export {
  formatReport,
  VerificationReports,
  type Inconsistency,
  type InconsistencyKind,
  type VerificationCounts,
  type VerificationReport,
} from './verification-report.js'
export { currentPhase, reconcile, type ReconcileOptions, type ReconcileResult, type Repair } from './reconcile.js'
export { BackfillJobs, type BackfillJobsOptions, type PlannedRange } from './backfill-jobs.js'
export { defineCutoverConfig, type CutoverConfig, type CutoverConfigModule, type MigrationJobSettings } from './cutover-config.js'
