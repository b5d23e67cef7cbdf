CREATE TABLE "node_contributions" (
	"request_id" text NOT NULL,
	"peer_id" text NOT NULL,
	"eth_address" text,
	"block_start" integer NOT NULL,
	"block_end" integer NOT NULL,
	"prompt_tokens" integer NOT NULL,
	"generated_tokens" integer NOT NULL,
	"replayed_tokens" integer NOT NULL,
	"failed" boolean NOT NULL,
	CONSTRAINT "node_contributions_request_id_peer_id_block_start_block_end_pk" PRIMARY KEY("request_id","peer_id","block_start","block_end"),
	CONSTRAINT "node_contributions_counts_check" CHECK ("node_contributions"."prompt_tokens" >= 0 and "node_contributions"."generated_tokens" >= 0 and "node_contributions"."replayed_tokens" >= 0)
);
--> statement-breakpoint
CREATE TABLE "requests" (
	"id" text PRIMARY KEY NOT NULL,
	"api" text NOT NULL,
	"api_key_id" text,
	"wallet" text,
	"model" text NOT NULL,
	"gateway_id" text NOT NULL,
	"prompt_tokens" integer NOT NULL,
	"completion_tokens" integer DEFAULT 0 NOT NULL,
	"cost_units" numeric(78, 0) DEFAULT 0 NOT NULL,
	"status" text NOT NULL,
	"error" text,
	"started_at" timestamp with time zone NOT NULL,
	"first_token_at" timestamp with time zone,
	"ended_at" timestamp with time zone,
	"updated_at" timestamp with time zone NOT NULL,
	CONSTRAINT "requests_status_check" CHECK ("requests"."status" in ('running', 'completed', 'stopped', 'cancelled', 'failed', 'interrupted')),
	CONSTRAINT "requests_api_check" CHECK ("requests"."api" in ('far-mesh', 'chat.completions', 'completions')),
	CONSTRAINT "requests_counts_check" CHECK ("requests"."prompt_tokens" >= 0 and "requests"."completion_tokens" >= 0 and "requests"."cost_units" >= 0)
);
--> statement-breakpoint
ALTER TABLE "node_contributions" ADD CONSTRAINT "node_contributions_request_id_requests_id_fk" FOREIGN KEY ("request_id") REFERENCES "public"."requests"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "requests_started_at_idx" ON "requests" USING btree ("started_at");--> statement-breakpoint
CREATE INDEX "requests_status_updated_at_idx" ON "requests" USING btree ("status","updated_at");