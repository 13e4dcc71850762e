import type { Cutover } from './cutover.js'
import type { FleetEngine } from './fleet-member.js'

/** The view of a `Cutover` its fleet member works with: logger, metrics, migrations, refresh. */
export function fleetEngine(cutover: Cutover): FleetEngine {
  return {
    get logger() {
      return cutover.logger
    },
    get metrics() {
      return cutover.metrics
    },
    get migrations() {
      return cutover.migrations.map((runtime) => ({
        name: runtime.name,
        get phase() {
          return runtime.phase
        },
        get tenantPhases() {
          return Object.fromEntries([...runtime.tenantOverrides].map(([tenant, settings]) => [tenant, settings.phase]))
        },
        queueDepth: () => runtime.queue('old-to-new').depth + runtime.queue('new-to-old').depth,
        drain: () => runtime.drain(),
      }))
    },
    refresh: () => cutover.refresh(),
  }
}
