export { AUDIT_GENESIS, AuditLog, type AuditAction, type AuditEntry, type StoredAuditEntry } from './control/audit-log.js'
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
  PhaseTransitionError,
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
export { Metrics, type HistogramSummary, type Labels, type MetricsSnapshot } from './observe/metrics.js'
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
  type MirrorDirection,
  type MirrorQueueOptions,
  type RetryPolicy,
} from './runtime/mirror-queue.js'
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
} from './model/phase.js'
export { BUCKETS, bucketInPercent, rampReadSide, routingBucket, type TenantOverrides } from './model/routing.js'
export { keyString, type KeyValue, type Row, type Store, type WriteMode, type WriteResult } from './model/store.js'
export type { FilterNode, NewStoreReader, SortKey, TranslatedQuery } from './model/translated-query.js'
// Jobs: backfill, verification, reconciliation (issue 5).
export { backfill, backfillFingerprint, type BackfillOptions, type BackfillProgress, type BackfillSummary, type BatchMismatch, type KeyRange } from './jobs/backfill.js'
export { BatchSizer, type BatchSizing } from './jobs/batch-sizer.js'
export { BackfillConfigChangedError, CheckpointTable, type BackfillCounts, type Checkpoint } from './control/checkpoint.js'
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
